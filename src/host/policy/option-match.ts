import type { ShellWord } from './words.js';

/**
 * One risk check per program: the reason its arguments (from index `from` on) make it execute
 * something or write a file, or undefined.
 */
export type RiskCheck = (argv: ShellWord[], from: number) => string | undefined;

/** `--name[=v]` → name, if it abbreviates (or is) one of `risky`. Ambiguous prefixes count as hits. */
export function longHit(text: string, risky: readonly string[]): string | undefined {
  if (!text.startsWith('--') || text.length < 3) return undefined;
  const name = text.slice(2).split('=')[0] as string;
  return risky.find((r) => r === name || (name.length >= 1 && r.startsWith(name)));
}

/** Short-option cluster `-xvfo…`: the first risky letter before a value-taking one, if any. */
export function shortHit(text: string, risky: string, takesValue: string): string | undefined {
  if (!/^-[^-]/.test(text)) return undefined;
  for (const c of text.slice(1)) {
    if (risky.includes(c)) return c;
    if (takesValue.includes(c)) return undefined;
  }
  return undefined;
}
