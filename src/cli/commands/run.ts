import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import type { ApiClient } from '../../host/api/client.js';
import type { EventOf } from '../../host/api/contract.js';
import { CoworkError, EXIT_CODES } from '../../host/errors.js';
import type { StoredEvent } from '../../host/timeline/index.js';
import { action, addExamples, connectController, humanMs } from '../common.js';

interface RunFlags {
  workspace?: string;
  model?: string;
  json?: boolean;
}

const OUTCOME_EXIT: Record<string, number> = {
  completed: 0,
  failed: 1,
  cancelled: EXIT_CODES.cancelled,
  limit: EXIT_CODES.limitExceeded,
  denied: EXIT_CODES.denied,
};

const oneLine = (s: string, max = 160) => {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
};

/** Renders one task's timeline events for a person at a terminal. */
class TaskView {
  started = Date.now();
  lastBudget?: Extract<StoredEvent, { type: 'budget' }>['data'];

  line(e: StoredEvent): string | undefined {
    switch (e.type) {
      case 'model.call': {
        const u = e.data.usage;
        return `· model call${e.data.attempt > 1 ? ` (attempt ${e.data.attempt})` : ''}: ${u.input} in / ${u.output} out tokens, stop ${e.data.stopReason}`;
      }
      case 'tool.call':
        return `▸ ${e.data.name} ${oneLine(e.data.inputExcerpt ?? '')}`;
      case 'policy.decision':
        return `  policy: ${e.data.effect}${e.data.reasons.length ? ` — ${oneLine(e.data.reasons.join('; '), 120)}` : ''}`;
      case 'approval.answered':
        return `  approval ${e.data.id}: ${e.data.verdict} by ${e.data.by}`;
      case 'approval.timedout':
        return `  approval ${e.data.id}: no answer in time — denied`;
      case 'exec.finished': {
        const out = `${e.data.stdoutExcerpt ?? ''}${e.data.stderrExcerpt ?? ''}`.trimEnd();
        const lines = out.split('\n').slice(-8);
        const status = e.data.timedOut
          ? 'timed out'
          : e.data.signal
            ? `killed (${e.data.signal})`
            : `exit ${e.data.exitCode}`;
        return `  ${status} in ${humanMs(e.data.durationMs)}${out ? `\n${lines.map((l) => `  │ ${l}`).join('\n')}` : ''}`;
      }
      case 'tool.result':
        return e.data.isError ? `  ✗ ${oneLine(e.data.outputExcerpt ?? '', 200)}` : undefined;
      case 'budget': {
        this.lastBudget = e.data;
        return `  ${budgetLine(e.data)}`;
      }
      case 'error':
        return `  ! ${e.data.message}`;
      case 'task.limit':
        return `■ limit reached: ${e.data.name} (${e.data.figure} of ${e.data.limit})`;
      case 'task.cancelled':
        return `■ cancelled by ${e.data.by}`;
      default:
        return undefined;
    }
  }
}

function budgetLine(b: Extract<StoredEvent, { type: 'budget' }>['data']): string {
  const l = b.limits;
  const cost = b.costUsd === null ? 'cost unknown' : `$${b.costUsd.toFixed(4)}`;
  return (
    `tokens ${b.totalTokens}${l.maxTokens ? `/${l.maxTokens}` : ''} · ${cost}` +
    `${l.maxCostUsd ? `/$${l.maxCostUsd}` : ''} · iterations ${b.iterations}${l.maxIterations ? `/${l.maxIterations}` : ''}`
  );
}

/** Asks the person at this terminal about an approval for this task, then answers it. */
async function askApproval(client: ApiClient<'local'>, e: Extract<StoredEvent, { type: 'approval.asked' }>) {
  const d = e.data;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  // A tty is read in raw mode while asking: Ctrl-C arrives as a byte readline turns into its own
  // event. Raise it as the signal it is, so the first press cancels the task as it does elsewhere.
  rl.on('SIGINT', () => process.kill(process.pid, 'SIGINT'));
  try {
    process.stderr.write(
      `\n? approval ${d.id}: ${d.tool} (${d.risk})${d.command ? `\n    ${d.command}` : ''}\n    why: ${d.reasons.join('; ')}\n`,
    );
    const a = (
      await rl.question('  [a]pprove once, approve for the [t]ask, [d]eny (message after a space): ')
    ).trim();
    const [head, ...rest] = a.split(' ');
    const kind = head === 'a' ? 'approve-once' : head === 't' ? 'approve-task' : 'deny';
    const message = kind === 'deny' && rest.length ? rest.join(' ') : undefined;
    await client.call('approvals.answer', { id: d.id, kind, message }).catch((err: unknown) => {
      // Someone else (another terminal, the dashboard) may have answered first.
      process.stderr.write(`  ${CoworkError.from(err).message}\n`);
    });
  } finally {
    rl.close();
  }
}

type Finished = Extract<StoredEvent, { type: 'task.finished' }>;
type LiveEvent = EventOf<'tasks.events'>;

/**
 * One task as this terminal follows it: subscribed to the timeline (and, for people, to the
 * model's live text) before the task starts, so nothing it does is missed; events of the task
 * that arrive before its id is known are held back and replayed.
 */
class TaskWatch {
  readonly view = new TaskView();
  private taskId: string | undefined;
  private readonly early: StoredEvent[] = [];
  private readonly heldLive: LiveEvent[] = [];
  private approvals = Promise.resolve();
  private readonly sub = new AbortController();
  private readonly streams: Promise<unknown>[] = [];
  private finish: (e: Finished) => void = () => {};
  readonly finished = new Promise<Finished>((r) => (this.finish = r));
  /** The task's change set as the runner reported it (absent if it never reported one). */
  filesChanged: string[] | undefined;
  /** The end checkpoint's record of the change set (shell side effects included). */
  changes: Extract<StoredEvent, { type: 'workspace.changes' }> | undefined;
  /** A person at a terminal answers approvals here; otherwise they are pointed elsewhere. */
  private readonly interactive: boolean;

  constructor(
    private readonly client: ApiClient<'local'>,
    private readonly flags: RunFlags,
  ) {
    this.interactive = process.stdin.isTTY === true && !flags.json;
    const onTimeline = (e: StoredEvent) => (this.taskId ? this.handle(e) : this.early.push(e));
    this.streams.push(
      client
        .call(
          'timeline.subscribe',
          {},
          { signal: this.sub.signal, onEvent: (e) => onTimeline(e as StoredEvent) },
        )
        .catch(() => undefined),
    );
    if (!flags.json) {
      const onLive = (e: LiveEvent) => (this.taskId ? this.live(e) : this.heldLive.push(e));
      this.streams.push(
        client.call('tasks.events', {}, { signal: this.sub.signal, onEvent: onLive }).catch(() => undefined),
      );
    }
  }

  async start(prompt: string): Promise<string> {
    const { id } = await this.client.call('tasks.start', {
      prompt,
      model: this.flags.model,
      context: 'agent',
      // The explicit override a user may give; it stays on the host (controller → SDK).
      apiKeyOverride: process.env.ANTHROPIC_API_KEY || undefined,
    });
    this.taskId = id;
    if (!this.flags.json) process.stdout.write(`task ${id} started — Ctrl-C cancels it\n`);
    for (const e of this.heldLive.splice(0)) this.live(e);
    for (const e of this.early.splice(0)) this.handle(e);
    return id;
  }

  /** Waits for task.finished; the first Ctrl-C cancels the task, the second stops waiting. */
  async untilFinished(): Promise<Finished> {
    let interrupted = false;
    const onInt = () => {
      if (interrupted) process.exit(EXIT_CODES.cancelled);
      interrupted = true;
      process.stderr.write(`\ncancelling ${this.taskId}… (Ctrl-C again to stop waiting)\n`);
      void this.client.call('tasks.cancel', { id: this.taskId! }).catch(() => undefined);
    };
    process.on('SIGINT', onInt);
    return await this.finished.finally(() => process.off('SIGINT', onInt));
  }

  async close(): Promise<void> {
    this.sub.abort();
    await Promise.all(this.streams);
    this.client.close();
  }

  private live(e: LiveEvent): void {
    if (e.taskId !== this.taskId) return;
    if (e.type === 'text') process.stdout.write(e.text);
    else this.filesChanged = e.filesChanged;
  }

  private handle(e: StoredEvent): void {
    if (e.taskId !== this.taskId) return;
    if (this.flags.json) process.stdout.write(`${JSON.stringify(e)}\n`);
    else {
      const line = this.view.line(e);
      if (line) process.stdout.write(`${line}\n`);
    }
    if (e.type === 'approval.asked') {
      if (this.interactive) this.approvals = this.approvals.then(() => askApproval(this.client, e));
      else if (!this.flags.json)
        process.stdout.write(
          `  waiting for approval: cowork-vm approve ${e.data.id} | cowork-vm deny ${e.data.id}\n`,
        );
    }
    if (e.type === 'workspace.changes') this.changes = e;
    if (e.type === 'task.finished') this.finish(e);
  }
}

function printSummary(watch: TaskWatch, taskId: string, end: Finished): void {
  const b = watch.view.lastBudget;
  process.stdout.write(
    `\n${end.data.outcome.toUpperCase()}: ${end.data.summary ?? ''}\n` +
      changesText(watch, taskId) +
      `${b ? `${budgetLine(b)} · ` : ''}duration ${humanMs(Date.now() - watch.view.started)} · task ${taskId} (cowork-vm timeline ${taskId})\n`,
  );
}

/** The change set from the task's end checkpoint: every path, however it was changed. */
function changesText(watch: TaskWatch, taskId: string): string {
  const c = watch.changes?.data;
  if (!c) {
    const files = watch.filesChanged;
    return `files changed: ${files === undefined ? '(not reported)' : files.length ? files.join(', ') : '(none)'}\n`;
  }
  if (c.changes.length === 0) return 'workspace: no changes\n';
  const lines = c.changes.slice(0, 20).map((l) => `  ${l}\n`);
  const more = c.changes.length > 20 || c.changesTruncated ? '  …\n' : '';
  const skipped = c.skipped.length
    ? `  not checkpointed (changes unknown): ${c.skipped.map((s) => `${s.path} (${s.reason})`).join(', ')}\n`
    : '';
  return `workspace changes (cowork-vm diff ${taskId} · cowork-vm undo ${taskId}):\n${lines.join('')}${more}${skipped}`;
}

async function runTask(words: string[], flags: RunFlags): Promise<void> {
  const { client } = await connectController(flags.workspace);
  const watch = new TaskWatch(client, flags);
  const taskId = await watch.start(words.join(' '));
  const end = await watch.untilFinished();
  await watch.close();
  if (!flags.json) printSummary(watch, taskId, end);
  process.exit(OUTCOME_EXIT[end.data.outcome] ?? 1);
}

export function register(program: Command): void {
  const cmd = program
    .command('run')
    .description('Give the agent a task: Claude runs on this host, every tool runs in the sandbox')
    .argument('<task...>', 'what to do, in plain words')
    .option('-w, --workspace <dir>', 'workspace folder (default: current directory)')
    .option('-m, --model <id>', 'Claude model id (default: config agent.model)')
    .option('--json', 'print the timeline events of the task as JSON lines')
    .action(action(runTask));
  addExamples(cmd, [
    'cowork-vm run "add a test for utils.ts and make it pass"',
    'cowork-vm run --model claude-haiku-5-5 "summarise README.md"',
    'cowork-vm run --json "list the files" > events.jsonl',
  ]);
}
