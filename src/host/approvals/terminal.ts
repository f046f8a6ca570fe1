import type { Interface } from 'node:readline';
import { CoworkError } from '../errors.js';
import { escapeControl } from '../timeline/index.js';
import type { ApprovalBroker, PendingApproval, Verdict } from './types.js';

/** What a frontend decides; the broker's caller adds who answered (`by`). */
export type Answer = Omit<Verdict, 'by'>;

/**
 * The terminal frontend of the approval broker: `cowork-vm start` in the foreground. Everything
 * shown came from the model or the guest, so control characters are made visible — an ANSI
 * sequence in a command must not be able to hide what is being approved.
 */
export function renderApproval(p: PendingApproval, now: number = Date.now()): string {
  const left = Math.max(0, Math.round((p.expiresAt - now) / 1000));
  const lines = [
    `── approval ${p.id} ── denied automatically in ${Math.floor(left / 60)}m${String(left % 60).padStart(2, '0')}s`,
    `  tool     ${show(p.tool)} (risk: ${p.risk}, context: ${p.context}${p.taskId ? `, task ${show(p.taskId)}` : ''})`,
  ];
  if (p.command !== undefined) lines.push(`  command  ${show(p.command)}`);
  if (p.input !== undefined) lines.push(`  input    ${show(excerpt(p.input, 600))}`);
  if (p.cwd !== undefined) lines.push(`  cwd      ${show(p.cwd)}`);
  p.reasons.forEach((r, i) => {
    lines.push(`  ${i === 0 ? 'why' : '   '}      ${show(r)}`);
  });
  lines.push(`  ${choices(p)}`);
  return lines.join('\n');
}

function choices(p: PendingApproval): string {
  const task = p.command !== undefined ? '  [A] approve this exact command for the rest of the task' : '';
  return `[a] approve once${task}  [d] deny  [D] deny with a message for the agent`;
}

/**
 * Parse one typed answer: a, A, d, D, or "d message" / "D message". Returns 'ask-message' for
 * a bare D, undefined for anything else (the caller asks again).
 */
export function parseAnswer(line: string, p: PendingApproval): Answer | 'ask-message' | undefined {
  const text = line.trim();
  if (text === 'a') return { kind: 'approve-once' };
  if (text === 'A') return p.command !== undefined ? { kind: 'approve-task' } : undefined;
  if (text === 'd') return { kind: 'deny' };
  if (text === 'D') return 'ask-message';
  const m = /^[dD]\s+(.+)$/s.exec(text);
  if (m?.[1]) return { kind: 'deny', message: m[1].trim() };
  return undefined;
}

/**
 * Show a pending approval and read the answer from `rl`. Resolves undefined when the signal
 * aborts (it was answered elsewhere) or the input closes — the caller then answers nothing and
 * the broker's timeout still denies.
 */
export async function promptApproval(
  p: PendingApproval,
  rl: Interface,
  opts: { signal?: AbortSignal; now?: () => number } = {},
): Promise<Answer | undefined> {
  let query = `${renderApproval(p, (opts.now ?? Date.now)())}\n> `;
  for (;;) {
    const line = await ask(rl, query, opts.signal);
    if (line === undefined) return undefined;
    const parsed = parseAnswer(line, p);
    if (parsed === 'ask-message') {
      const message = await ask(rl, 'message for the agent: ', opts.signal);
      if (message === undefined) return undefined;
      return message.trim() ? { kind: 'deny', message: message.trim() } : { kind: 'deny' };
    }
    if (parsed) return parsed;
    query = `please type one of: ${choices(p)}\n> `;
  }
}

/**
 * Wire the terminal prompt to a broker: one prompt at a time, in arrival order; a prompt whose
 * approval is answered elsewhere (dashboard, `cowork-vm approve`) is withdrawn. `answer` is
 * where the typed verdict goes (the controller adds by: 'terminal'). Returns a detach function.
 */
export function attachTerminalPrompt(opts: {
  broker: Pick<ApprovalBroker, 'on' | 'off' | 'list'>;
  rl: Interface;
  answer: (id: string, answer: Answer) => void;
  output?: NodeJS.WritableStream;
}): () => void {
  const { broker, rl } = opts;
  const queue: PendingApproval[] = broker.list();
  let current: { id: string; ac: AbortController } | undefined;
  let detached = false;

  const pump = async (): Promise<void> => {
    if (current || detached) return;
    const p = queue.shift();
    if (!p) return;
    current = { id: p.id, ac: new AbortController() };
    const answer = await promptApproval(p, rl, { signal: current.ac.signal });
    current = undefined;
    if (answer) {
      try {
        opts.answer(p.id, answer);
      } catch (err) {
        // Someone else was quicker, or it timed out while the user typed: their answer stands.
        if (!CoworkError.is(err, 'invalidState') && !CoworkError.is(err, 'notFound')) throw err;
        opts.output?.write(`approval ${p.id}: ${(err as Error).message}\n`);
      }
    }
    return pump();
  };
  const onPending = (p: PendingApproval) => {
    queue.push(p);
    void pump();
  };
  const onAnswered = (p: PendingApproval, v: Verdict) => {
    const i = queue.findIndex((q) => q.id === p.id);
    if (i >= 0) queue.splice(i, 1);
    if (current?.id === p.id) {
      current.ac.abort();
      opts.output?.write(`\napproval ${p.id} was answered elsewhere (${v.kind} by ${show(v.by)})\n`);
    }
  };
  broker.on('pending', onPending);
  broker.on('answered', onAnswered);
  void pump();
  return () => {
    detached = true;
    current?.ac.abort();
    broker.off('pending', onPending);
    broker.off('answered', onAnswered);
  };
}

function ask(rl: Interface, query: string, signal?: AbortSignal): Promise<string | undefined> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(undefined);
    const done = (v: string | undefined) => {
      rl.off('close', onClose);
      signal?.removeEventListener('abort', onAbort);
      resolve(v);
    };
    const onClose = () => done(undefined);
    const onAbort = () => done(undefined);
    rl.once('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (signal) rl.question(query, { signal }, (answer) => done(answer));
      else rl.question(query, (answer) => done(answer));
    } catch {
      done(undefined); // the interface was already closed
    }
  });
}

function show(s: string): string {
  return escapeControl(s);
}

function excerpt(value: unknown, max: number): string {
  let text: string;
  try {
    text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text;
}
