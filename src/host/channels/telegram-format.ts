import type { StatusInfo } from '../api/controller.js';
import type { PendingApproval } from '../approvals/types.js';

/** Plain-text messages the Telegram channel sends (no parse_mode: nothing user-supplied is markup). */

const MAX = 4000; // Telegram's limit is 4096 characters per message

export function clip(text: string, max = MAX): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

export function formatStatus(s: StatusInfo): string {
  return clip(
    [
      `● ${s.state} — ${s.workspace}`,
      `VM: ${s.vm.driver} (${s.vm.accel}), ${s.vm.cpus} cpu, ${s.vm.memoryMiB} MiB, image ${s.vm.image}`,
      `Pending approvals: ${s.pendingApprovals} · running tasks: ${s.tasks.running}`,
    ].join('\n'),
  );
}

export function formatApproval(a: PendingApproval, now: number): string {
  const mins = Math.max(0, Math.round((a.expiresAt - now) / 60_000));
  return clip(
    [
      `Approval needed (${a.id}) — ${a.tool}, risk ${a.risk}${a.taskId ? `, task ${a.taskId}` : ''}`,
      a.command ? `$ ${a.command}` : undefined,
      a.reasons.length ? `Why: ${a.reasons.join('; ')}` : undefined,
      `Expires in about ${mins} min; no answer means deny.`,
    ]
      .filter((l) => l !== undefined)
      .join('\n'),
  );
}

export const HELP_TEXT = [
  'cowork-vm bot commands:',
  '/status — sandbox state',
  '/run TASK — start an agent task',
  '/cancel [TASK_ID] — cancel a task (default: the last one started here)',
  '/approvals — pending approvals with Approve/Deny buttons',
  '/pair CODE — pair this account (code from `cowork-vm pair` on the host)',
].join('\n');

/** One line for a timeline event of a task started from a chat, or undefined to stay quiet. */
export function formatProgress(event: {
  type?: unknown;
  taskId?: unknown;
  data?: unknown;
}): string | undefined {
  const d = (event.data ?? {}) as Record<string, unknown>;
  const task = String(event.taskId);
  switch (event.type) {
    case 'exec.started':
      return clip(`▶ ${task}: $ ${String(d.command ?? '')}`);
    case 'task.finished':
      return clip(`■ ${task} ${String(d.outcome ?? 'finished')}${d.summary ? `\n${String(d.summary)}` : ''}`);
    case 'task.cancelled':
      return `■ ${task} cancelled by ${String(d.by ?? '?')}`;
    case 'task.limit':
      return clip(
        `■ ${task} stopped at a limit: ${String(d.name ?? '')}${d.message ? ` — ${String(d.message)}` : ''}`,
      );
    default:
      return undefined;
  }
}
