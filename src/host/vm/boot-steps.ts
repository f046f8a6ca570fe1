/**
 * The guest's boot step times (docs/guest-contract.md, COWORK-TIME): parsed from its console by
 * the drivers, kept in the sandbox's info, shown by `cowork-vm status` and the bench. No imports,
 * so the CLI can load it cheaply.
 */

// The guest writes this line, so it is bounded: at most 64 steps, names of 1-32 letters,
// values of at most 6 digits before and after the point (the status result's schema takes them).
const TIME_RE = /COWORK-TIME((?:\s+[a-z]{1,32}=\d{1,6}(?:\.\d{1,6})?){1,64})\s*$/;

/** Each boot step's end, in seconds of guest uptime, in the guest's order. */
export type BootSteps = Record<string, number>;

/** Parses a COWORK-TIME line; undefined for any other line. */
export function parseBootSteps(line: string): BootSteps | undefined {
  const m = TIME_RE.exec(line);
  if (!m) return undefined;
  const steps: BootSteps = {};
  for (const pair of m[1]!.trim().split(/\s+/)) {
    const [name, value] = pair.split('=') as [string, string];
    steps[name] = Number(value);
  }
  return steps;
}

/**
 * Each step with its end and its own share (end minus the previous step's end). A restored
 * guest's list starts at "go", which then counts from itself.
 */
export function bootStepShares(steps: BootSteps): { name: string; end: number; share: number }[] {
  const entries = Object.entries(steps);
  let prev = entries[0]?.[0] === 'go' ? (entries[0]?.[1] ?? 0) : 0;
  return entries.map(([name, end]) => {
    const share = end - prev;
    prev = end;
    return { name, end, share };
  });
}

/** The steps of 0.1 s or more with their share ("kernel 1.19 · modules 0.61 · …"), the rest as "other". */
export function bootStepsSummary(steps: BootSteps): string {
  let other = 0;
  const parts: string[] = [];
  for (const { name, share } of bootStepShares(steps)) {
    if (share >= 0.1) parts.push(`${name} ${share.toFixed(2)}`);
    else other += share;
  }
  if (other >= 0.01) parts.push(`other ${other.toFixed(2)}`);
  return parts.join(' · ') || 'no step over 0.01 s';
}
