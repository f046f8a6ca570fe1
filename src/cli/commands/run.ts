import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import type { LocalControlClient } from '../../host/control/local-client.js';
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
  readonly filesChanged = new Set<string>();
  started = Date.now();
  lastBudget?: Extract<StoredEvent, { type: 'budget' }>['data'];

  line(e: StoredEvent): string | undefined {
    switch (e.type) {
      case 'model.call': {
        const u = e.data.usage;
        return `· model call${e.data.attempt > 1 ? ` (attempt ${e.data.attempt})` : ''}: ${u.input} in / ${u.output} out tokens, stop ${e.data.stopReason}`;
      }
      case 'tool.call': {
        const input = e.data.inputExcerpt ?? '';
        if (e.data.name === 'write_file' || e.data.name === 'edit_file') {
          const m = /"path":"((?:[^"\\]|\\.)*)"/.exec(input);
          if (m?.[1]) this.filesChanged.add(JSON.parse(`"${m[1]}"`) as string);
        }
        return `▸ ${e.data.name} ${oneLine(input)}`;
      }
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
async function askApproval(client: LocalControlClient, e: Extract<StoredEvent, { type: 'approval.asked' }>) {
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

export function register(program: Command): void {
  const cmd = program
    .command('run')
    .description('Give the agent a task: Claude runs on this host, every tool runs in the sandbox')
    .argument('<task...>', 'what to do, in plain words')
    .option('-w, --workspace <dir>', 'workspace folder (default: current directory)')
    .option('-m, --model <id>', 'Claude model id (default: config agent.model)')
    .option('--json', 'print the timeline events of the task as JSON lines')
    .action(
      action(async (words: string[], flags: RunFlags) => {
        const prompt = words.join(' ');
        const { client } = await connectController(flags.workspace);
        const view = new TaskView();
        const interactive = process.stdin.isTTY === true && !flags.json;
        let taskId: string | undefined;
        const early: StoredEvent[] = [];
        let finish: (e: Extract<StoredEvent, { type: 'task.finished' }>) => void = () => {};
        const finished = new Promise<Extract<StoredEvent, { type: 'task.finished' }>>((r) => (finish = r));
        let approvals = Promise.resolve();

        const handle = (e: StoredEvent) => {
          if (e.taskId !== taskId) return;
          if (flags.json) process.stdout.write(`${JSON.stringify(e)}\n`);
          else {
            const line = view.line(e);
            if (line) process.stdout.write(`${line}\n`);
          }
          if (e.type === 'approval.asked') {
            if (interactive) approvals = approvals.then(() => askApproval(client, e));
            else if (!flags.json)
              process.stdout.write(
                `  waiting for approval: cowork-vm approve ${e.data.id} | cowork-vm deny ${e.data.id}\n`,
              );
          }
          if (e.type === 'task.finished') finish(e);
        };
        const sub = new AbortController();
        const subscription = client
          .call(
            'timeline.subscribe',
            {},
            {
              signal: sub.signal,
              onEvent: (ev) => (taskId ? handle(ev as StoredEvent) : early.push(ev as StoredEvent)),
            },
          )
          .catch(() => undefined);

        // The model's text as it streams (the timeline carries everything else). Subscribed before
        // the task starts; text of this task that arrives before its id is known is held back.
        const heldText: { taskId: string; text: string }[] = [];
        const showText = (e: { taskId: string; text: string }) => {
          if (e.taskId === taskId) process.stdout.write(e.text);
        };
        const textStream = flags.json
          ? undefined
          : client
              .call(
                'tasks.events',
                {},
                {
                  signal: sub.signal,
                  onEvent: (ev) => {
                    const e = ev as { taskId?: unknown; text?: unknown };
                    if (typeof e.taskId !== 'string' || typeof e.text !== 'string') return;
                    if (taskId) showText({ taskId: e.taskId, text: e.text });
                    else heldText.push({ taskId: e.taskId, text: e.text });
                  },
                },
              )
              .catch(() => undefined);

        const started = await client.call<{ id: string }>('tasks.start', {
          prompt,
          model: flags.model,
          context: 'agent',
          // The explicit override the issue allows; it stays on the host (controller → SDK).
          apiKeyOverride: process.env.ANTHROPIC_API_KEY || undefined,
        });
        taskId = started.id;
        if (!flags.json) process.stdout.write(`task ${taskId} started — Ctrl-C cancels it\n`);

        for (const e of heldText.splice(0)) showText(e);
        for (const e of early.splice(0)) handle(e);

        let interrupted = false;
        const onInt = () => {
          if (interrupted) process.exit(EXIT_CODES.cancelled); // second Ctrl-C: stop waiting
          interrupted = true;
          process.stderr.write(`\ncancelling ${taskId}… (Ctrl-C again to stop waiting)\n`);
          void client.call('tasks.cancel', { id: taskId }).catch(() => undefined);
        };
        process.on('SIGINT', onInt);
        const end = await finished.finally(() => process.off('SIGINT', onInt));
        sub.abort();
        await subscription;
        await textStream;
        client.close();

        if (!flags.json) {
          const b = view.lastBudget;
          process.stdout.write(
            `\n${end.data.outcome.toUpperCase()}: ${end.data.summary ?? ''}\n` +
              `files changed: ${view.filesChanged.size ? [...view.filesChanged].sort().join(', ') : '(none by file tools)'}\n` +
              `${b ? `${budgetLine(b)} · ` : ''}duration ${humanMs(Date.now() - view.started)} · task ${taskId} (cowork-vm timeline ${taskId})\n`,
          );
        }
        process.exit(OUTCOME_EXIT[end.data.outcome] ?? 1);
      }),
    );
  addExamples(cmd, [
    'cowork-vm run "add a test for utils.ts and make it pass"',
    'cowork-vm run --model claude-haiku-5-5 "summarise README.md"',
    'cowork-vm run --json "list the files" > events.jsonl',
  ]);
}
