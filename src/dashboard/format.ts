import type { TimelineEntry } from './types.js';

/**
 * Pure formatting and derivation from timeline entries: what each page shows, computed from the
 * same records the CLI's `timeline` prints. No DOM here (tests/unit/dashboard-format.test.ts).
 */

export function formatTime(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '—';
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  if (d > 0) return `${d}d ${hh}h ${mm}m`;
  if (hh > 0) return `${hh}h ${mm}m ${ss}s`;
  if (mm > 0) return `${mm}m ${ss}s`;
  return `${ss}s`;
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '—';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** How a verdict reads in a sentence: "approved once", "approved for the task", "denied". */
export function verdictWords(verdict: string): string {
  const words: Record<string, string> = {
    'approve-once': 'approved once',
    'approve-task': 'approved for the task',
    deny: 'denied',
  };
  return words[verdict] ?? verdict;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** One line saying what a timeline entry records (the details view shows all its fields). */
export function summarize(e: TimelineEntry): string {
  const d = e.data;
  switch (e.type) {
    case 'task.started':
      return `task started: ${str(d.title) ?? ''} (${str(d.origin) ?? '?'}, ${str(d.context) ?? '?'})`;
    case 'task.finished':
      return `task ${str(d.outcome) ?? 'finished'}${str(d.summary) ? `: ${d.summary}` : ''}`;
    case 'task.cancelled':
      return `task cancelled by ${str(d.by) ?? '?'}`;
    case 'task.limit':
      return `limit ${str(d.name)} reached: ${num(d.figure)} of ${num(d.limit)}`;
    case 'command.requested':
      return `${str(d.tool) ?? 'tool'} requested by ${str(d.origin) ?? '?'}: ${str(d.command) ?? str(d.inputExcerpt) ?? ''}`;
    case 'policy.decision':
      return `policy: ${str(d.effect)} (${str(d.layer)}${str(d.rule) ? ` ${d.rule}` : ''}) ${reasons(d.reasons)}`;
    case 'approval.asked':
      return `approval ${str(d.id)} asked: ${str(d.command) ?? str(d.inputExcerpt) ?? str(d.tool) ?? ''}`;
    case 'approval.answered':
      return `approval ${str(d.id)}: ${verdictWords(str(d.verdict) ?? '?')} by ${str(d.by)}${str(d.message) ? ` — ${d.message}` : ''}`;
    case 'approval.timedout':
      return `approval ${str(d.id)} timed out (deny)`;
    case 'exec.started':
      return `exec: ${str(d.command) ?? ''}`;
    case 'exec.finished':
      return `exit ${d.exitCode === null ? `signal ${str(d.signal) ?? '?'}` : num(d.exitCode)} after ${formatDuration(num(d.durationMs) ?? 0)}`;
    case 'exec.failed':
      return `exec failed: ${str(d.error) ?? ''}`;
    case 'tool.call':
      return `tool ${str(d.name)} ${str(d.inputExcerpt) ?? ''}`;
    case 'tool.result':
      return `tool ${str(d.name)} ${d.isError === true ? 'failed' : 'done'}`;
    case 'egress.request':
      return `egress ${str(d.decision)} ${str(d.method) ?? ''} ${str(d.host)}:${num(d.port)}${str(d.reason) ? ` — ${d.reason}` : ''}`;
    case 'budget':
      return `budget: ${num(d.totalTokens)} tokens, ${num(d.iterations)} iterations${typeof d.costUsd === 'number' ? `, $${d.costUsd.toFixed(4)}` : ''}`;
    case 'vm.started':
      return `VM started (${str(d.accel)}, ${str(d.share)}) in ${formatDuration(num(d.bootMs) ?? 0)}`;
    default:
      return compact(d);
  }
}

function reasons(v: unknown): string {
  return Array.isArray(v) && v.length > 0 ? `— ${v.map(String).join('; ')}` : '';
}

/** `k=v` pairs of the scalar fields, for event types without a summary of their own. */
function compact(d: Record<string, unknown>): string {
  return Object.entries(d)
    .filter(([, v]) => typeof v !== 'object' || v === null)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(' ');
}

export interface EgressRow {
  id: number;
  ts: number;
  taskId: string | null;
  method: string;
  host: string;
  port: number;
  decision: string;
  reason: string;
  status?: number;
  bytesIn: number;
  bytesOut: number;
}

/** The egress proxy's `egress.request` records, newest first. */
export function egressRows(entries: TimelineEntry[]): EgressRow[] {
  const rows: EgressRow[] = [];
  for (const e of entries) {
    if (e.type !== 'egress.request') continue;
    const d = e.data;
    rows.push({
      id: e.id,
      ts: e.ts,
      taskId: e.taskId,
      method: str(d.method) ?? '?',
      host: str(d.host) ?? '?',
      port: num(d.port) ?? 0,
      decision: str(d.decision) ?? '?',
      reason: [str(d.stage), str(d.reason)].filter(Boolean).join(': '),
      ...(num(d.status) !== undefined ? { status: num(d.status) } : {}),
      bytesIn: num(d.bytesIn) ?? 0,
      bytesOut: num(d.bytesOut) ?? 0,
    });
  }
  return rows.reverse();
}
