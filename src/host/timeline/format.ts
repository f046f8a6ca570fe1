import type { StoredEvent } from './events.js';
import type { TaskRecord } from './records.js';

/**
 * One human line per event for `cowork-vm timeline`: time, task, type, then what matters for
 * that type. Control characters in recorded text are made visible so a command or an output
 * excerpt cannot rewrite the user's terminal.
 */
export function formatEvent(e: StoredEvent, opts: { utc?: boolean } = {}): string {
  const d = new Date(e.ts);
  const time = opts.utc ? d.toISOString().slice(11, 19) : d.toTimeString().slice(0, 8);
  return `${time}  ${(e.taskId ?? '-').padEnd(8)}  ${e.type.padEnd(18)} ${escapeControl(describe(e))}`;
}

export function formatTask(t: TaskRecord): string {
  const status = t.status.padEnd(9);
  const summary = t.summary ? `  — ${t.summary}` : '';
  return escapeControl(
    `${t.id}  ${status} ${t.createdAt.replace('T', ' ').slice(0, 19)}  ${t.origin}  ${t.title}${summary}`,
  );
}

function describe(e: StoredEvent): string {
  switch (e.type) {
    case 'task.started':
      return `"${e.data.title}" (${e.data.context}, from ${e.data.origin})`;
    case 'task.finished':
      return e.data.outcome + (e.data.summary ? `: ${e.data.summary}` : '');
    case 'task.cancelled':
      return `by ${e.data.by}` + (e.data.reason ? `: ${e.data.reason}` : '');
    case 'task.limit':
      return `${e.data.name} reached: ${e.data.figure} of ${e.data.limit}`;
    case 'command.requested':
      return `${e.data.tool}: ${e.data.command ?? e.data.inputExcerpt ?? ''} (${e.data.context})`;
    case 'policy.decision':
      return `${e.data.effect.toUpperCase()} by ${e.data.layer}${e.data.rule ? ` ${e.data.rule}` : ''}: ${e.data.reasons.join('; ')}`;
    case 'approval.asked':
      return `${e.data.id} ${e.data.tool}: ${e.data.command ?? ''} (${e.data.risk})`;
    case 'approval.answered':
      return `${e.data.id} ${e.data.verdict} by ${e.data.by}` + (e.data.message ? `: ${e.data.message}` : '');
    case 'approval.timedout':
      return `${e.data.id} denied: no answer in time`;
    case 'exec.started':
      return (e.data.jobId ? `job ${e.data.jobId}: ` : '') + e.data.command;
    case 'exec.finished': {
      const how =
        e.data.exitCode !== null ? `exit ${e.data.exitCode}` : `killed by ${e.data.signal ?? 'signal'}`;
      const extra = (e.data.timedOut ? ', timed out' : '') + (e.data.truncated ? ', output truncated' : '');
      return `${how} in ${secs(e.data.durationMs)}, out ${bytes(e.data.stdoutBytes)}, err ${bytes(e.data.stderrBytes)}${extra}`;
    }
    case 'exec.failed':
      return `${e.data.command}: ${e.data.error}`;
    case 'budget': {
      const l = e.data.limits;
      const cost = e.data.costUsd === null ? '?' : `$${e.data.costUsd.toFixed(4)}`;
      return (
        `${e.data.totalTokens}${l.maxTokens !== undefined ? `/${l.maxTokens}` : ''} tokens, ` +
        `${cost}${l.maxCostUsd !== undefined ? `/$${l.maxCostUsd}` : ''}, ` +
        `${e.data.iterations}${l.maxIterations !== undefined ? `/${l.maxIterations}` : ''} iterations`
      );
    }
    case 'model.call':
      return (
        `${e.data.model} in ${e.data.usage.input} out ${e.data.usage.output}, ${e.data.stopReason ?? 'no stop reason'}, ` +
        `${secs(e.data.durationMs)}${e.data.attempt > 1 ? `, attempt ${e.data.attempt}` : ''}`
      );
    case 'tool.call':
      return `${e.data.name} ${e.data.inputExcerpt ?? ''}`;
    case 'tool.result':
      return `${e.data.name} ${e.data.isError ? 'error' : 'ok'}${e.data.outputBytes !== undefined ? `, ${bytes(e.data.outputBytes)}` : ''}`;
    case 'vm.started':
      return `${e.data.driver ?? 'vm'} accel=${e.data.accel} share=${e.data.share} ready in ${secs(e.data.bootMs)}`;
    case 'vm.stopped':
      return e.data.reason ?? (e.data.graceful === false ? 'forced' : 'stopped');
    case 'vm.crashed':
      return e.data.reason + (e.data.exitCode != null ? ` (exit ${e.data.exitCode})` : '');
    case 'egress.request':
      return (
        `${e.data.decision.toUpperCase()} ${e.data.method} ${e.data.host}:${e.data.port}` +
        `${e.data.status !== undefined ? ` ${e.data.status}` : ''}, in ${bytes(e.data.bytesIn)} out ${bytes(e.data.bytesOut)}` +
        (e.data.reason ? ` (${e.data.reason})` : '')
      );
    case 'browser.action':
      return `${e.data.action}${e.data.url ? ` ${e.data.url}` : ''}: ${e.data.outcome}`;
    case 'secret.set':
    case 'secret.deleted':
      return e.data.name;
    case 'secret.used':
    case 'secret.missing':
      return e.data.name + (e.data.purpose ? ` for ${e.data.purpose}` : '');
    case 'checkpoint.created':
      return `${e.data.checkpoint} (${e.data.kind}) ${e.data.files} files${e.data.skipped.length ? `, ${e.data.skipped.length} skipped: ${e.data.skipped.map((s) => s.path).join(', ')}` : ''}`;
    case 'workspace.changes': {
      const c = e.data.counts;
      const n = c.created + c.deleted + c.modified + c.mode + c.type;
      return `${e.data.checkpoint}: ${n} changed${
        n
          ? ` — ${e.data.changes
              .slice(0, 5)
              .map((l) => l.slice(3))
              .join(', ')}${n > 5 ? ', …' : ''}`
          : ''
      } (cowork-vm diff ${e.data.checkpoint})`;
    }
    case 'checkpoint.undone':
      return `${e.data.of} undone as ${e.data.checkpoint}: ${e.data.restored} restored, ${e.data.removed} removed${e.data.forced ? `, forced over ${e.data.conflicts.join(', ')}` : ''}`;
    case 'error':
      return `${e.data.code}: ${e.data.message}${e.data.where ? ` (${e.data.where})` : ''}`;
    default:
      // control.* and channel.*: their fields are short and flat.
      return Object.entries(e.data)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
  }
}

function secs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(1)}s`;
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * Newlines and other control characters become visible escapes, so one event stays one line and
 * text that came from the guest or the model cannot move the cursor or recolour the terminal.
 */
export function escapeControl(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    if (c === '\r') return '\\r';
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}
