import type { TimelineEntry } from './types.js';

/**
 * A task's tool calls with their decisions, and its budget meters, derived from the task's
 * timeline (tool.call → command.requested → policy.decision → approval.* → exec.* → tool.result).
 */
export interface ToolStep {
  toolUseId: string;
  name: string;
  input: string;
  decision?: { effect: string; reasons: string[]; rule?: string };
  approval?: { verdict: string; by: string; message?: string };
  exec?: { exitCode: number | null; signal?: string };
  result?: { isError: boolean; output: string };
}

export function toolSteps(entries: TimelineEntry[]): ToolStep[] {
  const steps: ToolStep[] = [];
  let open: ToolStep | undefined;
  for (const e of entries) {
    const d = e.data;
    if (e.type === 'tool.call') {
      open = {
        toolUseId: String(d.toolUseId ?? ''),
        name: String(d.name ?? '?'),
        input: String(d.inputExcerpt ?? ''),
      };
      steps.push(open);
      continue;
    }
    if (!open) continue;
    if (e.type === 'policy.decision') {
      open.decision = {
        effect: String(d.effect ?? '?'),
        reasons: Array.isArray(d.reasons) ? d.reasons.map(String) : [],
        ...(typeof d.rule === 'string' ? { rule: d.rule } : {}),
      };
    } else if (e.type === 'approval.answered' || e.type === 'approval.timedout') {
      open.approval = {
        verdict: String(d.verdict ?? 'deny'),
        by: String(d.by ?? '?'),
        ...(typeof d.message === 'string' ? { message: d.message } : {}),
      };
    } else if (e.type === 'exec.finished') {
      open.exec = {
        exitCode: typeof d.exitCode === 'number' ? d.exitCode : null,
        ...(typeof d.signal === 'string' ? { signal: d.signal } : {}),
      };
    } else if (e.type === 'tool.result' && String(d.toolUseId ?? '') === open.toolUseId) {
      open.result = { isError: d.isError === true, output: String(d.outputExcerpt ?? '') };
      open = undefined;
    }
  }
  return steps;
}

export interface Meter {
  label: string;
  value: number;
  /** undefined: no limit for this figure. */
  max?: number;
  text: string;
}

/** Tokens, cost and iterations from the task's latest `budget` record, against its limits. */
export function budgetMeters(entries: TimelineEntry[]): Meter[] {
  let budget: Record<string, unknown> | undefined;
  for (const e of entries) if (e.type === 'budget') budget = e.data;
  if (!budget) return [];
  const limits = (budget.limits ?? {}) as Record<string, unknown>;
  const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  const meter = (
    label: string,
    value: number,
    max: number | undefined,
    show: (x: number) => string,
  ): Meter => ({
    label,
    value,
    ...(max !== undefined ? { max } : {}),
    text: max !== undefined ? `${show(value)} of ${show(max)}` : `${show(value)} (no limit)`,
  });
  const meters = [
    meter('Tokens', n(budget.totalTokens) ?? 0, n(limits.maxTokens), (x) => x.toLocaleString('en')),
    meter('Iterations', n(budget.iterations) ?? 0, n(limits.maxIterations), String),
  ];
  const cost = n(budget.costUsd);
  meters.splice(
    1,
    0,
    cost === undefined
      ? { label: 'Cost', value: 0, text: 'no price known for this model' }
      : meter('Cost', cost, n(limits.maxCostUsd), (x) => `$${x.toFixed(4)}`),
  );
  return meters;
}

export interface WorkspaceChanges {
  checkpoint: string;
  /** One line per change as the host wrote it (`A  notes.txt`, `m  run.sh (644 → 755)`). */
  lines: string[];
  /** More changes than the event carries: `cowork-vm diff` has them all. */
  truncated: boolean;
  /** Files the checkpoint did not record (over the size cap), with why. */
  skipped: string[];
}

/**
 * The task's change set from its `workspace.changes` record (the end checkpoint: shell side
 * effects included); undefined while the task runs or when checkpoints are off.
 */
export function workspaceChanges(entries: TimelineEntry[]): WorkspaceChanges | undefined {
  let last: Record<string, unknown> | undefined;
  for (const e of entries) if (e.type === 'workspace.changes') last = e.data;
  if (!last) return undefined;
  const skipped = Array.isArray(last.skipped) ? last.skipped : [];
  return {
    checkpoint: String(last.checkpoint ?? ''),
    lines: Array.isArray(last.changes) ? last.changes.map(String) : [],
    truncated: last.changesTruncated === true,
    skipped: skipped.map((x) => {
      const f = (x ?? {}) as { path?: unknown; reason?: unknown };
      return `${String(f.path ?? '?')}${f.reason ? ` (${String(f.reason)})` : ''}`;
    }),
  };
}
