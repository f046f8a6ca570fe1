import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  type ApprovalRequest,
  attachTerminalPrompt,
  MemoryApprovalBroker,
  type PendingApproval,
  parseAnswer,
  promptApproval,
  reconcileAfterRestart,
  renderApproval,
  type Verdict,
} from '../../src/host/approvals/index.js';
import { CoworkError } from '../../src/host/errors.js';
import { Timeline } from '../../src/host/timeline/index.js';
import { waitFor } from '../helpers/wait.js';

const req = (over: Partial<ApprovalRequest> = {}): ApprovalRequest => ({
  tool: 'shell',
  command: 'rm -rf build',
  cwd: '/workspace',
  risk: 'destructive',
  context: 'agent',
  reasons: ['not on the allow list'],
  ...over,
});

function errorOf(fn: () => unknown): CoworkError | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof CoworkError) return err;
    throw err;
  }
  return undefined;
}

/** Let pending microtasks (the request's promise executor, listeners) run. */
const tick = () => new Promise((r) => setImmediate(r));

let dir: string;
let timeline: Timeline;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cowork-approvals-'));
  timeline = Timeline.open(join(dir, 'timeline.db'));
});
afterEach(() => {
  vi.useRealTimers();
  timeline.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('MemoryApprovalBroker', () => {
  it('lists a pending approval with a short id and resolves with the first answer', async () => {
    const broker = new MemoryApprovalBroker();
    const seen: string[] = [];
    broker.on('pending', (p) => seen.push(`pending ${p.id}`));
    broker.on('answered', (p, v) => seen.push(`answered ${p.id} ${v.kind}`));
    const verdict = broker.request(req());
    await tick();
    const [p] = broker.list();
    expect(p?.id).toMatch(/^a[a-z2-9]{3}$/);
    expect(p).toMatchObject({
      tool: 'shell',
      command: 'rm -rf build',
      risk: 'destructive',
      reasons: ['not on the allow list'],
    });
    expect(p!.expiresAt - p!.createdAt).toBe(5 * 60 * 1000);
    broker.answer(p!.id, { kind: 'approve-once', by: 'cli' });
    await expect(verdict).resolves.toEqual({ kind: 'approve-once', by: 'cli', id: p!.id });
    expect(broker.list()).toEqual([]);
    expect(seen).toEqual([`pending ${p!.id}`, `answered ${p!.id} approve-once`]);
  });

  it('lets exactly one of two simultaneous answers win; the other hears who answered first', async () => {
    const broker = new MemoryApprovalBroker();
    const verdict = broker.request(req());
    await tick();
    const id = broker.list()[0]!.id;
    const answerFrom = async (v: Verdict) => {
      await Promise.resolve();
      broker.answer(id, v);
      return v.by;
    };
    const results = await Promise.allSettled([
      answerFrom({ kind: 'approve-once', by: 'cli' }),
      answerFrom({ kind: 'deny', by: 'device:phone', message: 'no' }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(CoworkError.is(rejected.reason, 'invalidState')).toBe(true);
    expect(rejected.reason.message).toBe(`approval ${id} was already answered (approve-once by cli)`);
    await expect(verdict).resolves.toMatchObject({ kind: 'approve-once', by: 'cli' });
  });

  it('answers many approvals raced by several frontends exactly once each', async () => {
    const broker = new MemoryApprovalBroker();
    const verdicts = Array.from({ length: 20 }, () => broker.request(req()));
    await tick();
    const ids = broker.list().map((p) => p.id);
    expect(new Set(ids).size).toBe(20);
    let wins = 0;
    let refusals = 0;
    await Promise.all(
      ['cli', 'terminal', 'device:d1'].flatMap((by) =>
        ids.map(async (id) => {
          await Promise.resolve();
          try {
            broker.answer(id, { kind: 'deny', by });
            wins++;
          } catch (err) {
            if (!CoworkError.is(err, 'invalidState')) throw err;
            refusals++;
          }
        }),
      ),
    );
    expect(wins).toBe(20);
    expect(refusals).toBe(40);
    expect((await Promise.all(verdicts)).every((v) => v.kind === 'deny')).toBe(true);
  });

  it('refuses an unknown id with notFound', () => {
    const broker = new MemoryApprovalBroker();
    const err = errorOf(() => broker.answer('azzz', { kind: 'approve-once', by: 'cli' }));
    expect(err?.code).toBe('notFound');
    expect(err?.message).toContain('cowork-vm approvals');
  });

  it('does not let an invalid answer consume the approval', async () => {
    const broker = new MemoryApprovalBroker();
    const verdict = broker.request(req());
    await tick();
    const id = broker.list()[0]!.id;
    expect(
      errorOf(() => broker.answer(id, { kind: 'approve-all', by: 'cli' } as unknown as Verdict))?.code,
    ).toBe('invalidArgument');
    expect(errorOf(() => broker.answer(id, { kind: 'approve-once', by: '' }))?.code).toBe('invalidArgument');
    expect(broker.list()).toHaveLength(1);
    broker.answer(id, { kind: 'deny', by: 'cli' });
    await expect(verdict).resolves.toMatchObject({ kind: 'deny', by: 'cli' });
  });

  it('denies by timeout after exactly the default 5 minutes, and a late answer is refused', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const broker = new MemoryApprovalBroker({ timeline });
    const task = timeline.createTask({ title: 't', context: 'agent', origin: 'cli' });
    let settled: Verdict | undefined;
    void broker.request(req({ taskId: task.id })).then((v) => {
      settled = v;
    });
    await vi.advanceTimersByTimeAsync(0);
    const id = broker.list()[0]!.id;
    await vi.advanceTimersByTimeAsync(5 * 60 * 1000 - 1);
    expect(settled).toBeUndefined();
    expect(broker.list()).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(settled).toMatchObject({ kind: 'deny', by: 'timeout' });
    expect(broker.list()).toEqual([]);
    expect(errorOf(() => broker.answer(id, { kind: 'approve-once', by: 'cli' }))?.message).toBe(
      `approval ${id} was already answered (deny by timeout)`,
    );
    const events = timeline.query({ taskId: task.id, types: ['approval.*'] });
    expect(events.map((e) => e.type)).toEqual(['approval.asked', 'approval.timedout']);
  });

  it('honours a per-request timeout and refuses nonsense timeouts', async () => {
    vi.useFakeTimers();
    const broker = new MemoryApprovalBroker({ defaultTimeoutMs: 60_000 });
    const v = broker.request(req(), { timeoutMs: 10 });
    await vi.advanceTimersByTimeAsync(10);
    await expect(v).resolves.toMatchObject({ kind: 'deny', by: 'timeout' });
    for (const timeoutMs of [0, -1, Number.NaN, 2 ** 31]) {
      await expect(broker.request(req(), { timeoutMs })).rejects.toMatchObject({ code: 'invalidArgument' });
    }
    expect(() => new MemoryApprovalBroker({ defaultTimeoutMs: Number.POSITIVE_INFINITY })).toThrow(
      CoworkError,
    );
    expect(broker.list()).toEqual([]);
  });

  it('denies when the signal aborts, or at once when it already has', async () => {
    const broker = new MemoryApprovalBroker({ timeline });
    const ac = new AbortController();
    const v = broker.request(req(), { signal: ac.signal });
    await tick();
    expect(broker.list()).toHaveLength(1);
    ac.abort();
    await expect(v).resolves.toMatchObject({ kind: 'deny', by: 'abort' });
    expect(broker.list()).toEqual([]);
    await expect(broker.request(req(), { signal: AbortSignal.abort() })).resolves.toMatchObject({
      kind: 'deny',
      by: 'abort',
    });
    expect(broker.list()).toEqual([]);
    expect(timeline.query({ types: ['approval.answered'] }).map((e) => e.data)).toEqual([
      expect.objectContaining({ verdict: 'deny', by: 'abort' }),
    ]);
  });

  it('refuses an invalid request and fails closed when the ask cannot be recorded', async () => {
    const broker = new MemoryApprovalBroker({ timeline });
    await expect(broker.request(req({ risk: 'harmless' as 'read' }))).rejects.toMatchObject({
      code: 'invalidArgument',
    });
    // An unknown task: the timeline refuses the record, so nothing is asked (and nothing can be approved).
    await expect(broker.request(req({ taskId: 't-nosuch' }))).rejects.toMatchObject({ code: 'notFound' });
    expect(broker.list()).toEqual([]);
  });

  it('denies everything pending on close and refuses new requests after', async () => {
    const broker = new MemoryApprovalBroker();
    const a = broker.request(req());
    const b = broker.request(req({ command: 'make install' }));
    await tick();
    broker.close();
    await expect(a).resolves.toMatchObject({ kind: 'deny', by: 'shutdown' });
    await expect(b).resolves.toMatchObject({ kind: 'deny', by: 'shutdown' });
    await expect(broker.request(req())).resolves.toMatchObject({ kind: 'deny', by: 'shutdown' });
  });

  it('keeps working when a frontend listener throws', async () => {
    const broker = new MemoryApprovalBroker();
    broker.on('pending', (p) => {
      (p as { command?: string }).command = 'ls'; // a frontend cannot rewrite what others are shown
    });
    broker.on('pending', () => {
      throw new Error('broken dashboard');
    });
    const listener = vi.fn();
    broker.on('answered', listener);
    broker.off('answered', listener);
    const v = broker.request(req());
    await tick();
    expect(broker.list()[0]?.command).toBe('rm -rf build');
    broker.answer(broker.list()[0]!.id, { kind: 'approve-task', by: 'terminal' });
    await expect(v).resolves.toMatchObject({ kind: 'approve-task' });
    expect(listener).not.toHaveBeenCalled();
  });
});

describe('reconcileAfterRestart', () => {
  it('denies, by restart, every approval a dead controller left pending — against a real SQLite file', async () => {
    const file = join(dir, 'restart.db');
    const before = Timeline.open(file);
    const task = before.createTask({ title: 'deploy', context: 'agent', origin: 'telegram:7' });
    const dead = new MemoryApprovalBroker({ timeline: before });
    void dead.request(req({ taskId: task.id, command: 'git push' }));
    void dead.request(req({ command: 'make' }));
    const answered = dead.request(req({ taskId: task.id }));
    await tick();
    const [pushId, makeId, answeredId] = dead.list().map((p) => p.id);
    dead.answer(answeredId!, { kind: 'approve-once', by: 'cli' });
    await answered;
    before.close(); // the controller is gone; its two pending approvals were never answered

    const after = Timeline.open(file);
    try {
      expect(reconcileAfterRestart(after).sort()).toEqual([pushId, makeId].sort());
      const denials = after
        .query({ types: ['approval.answered'] })
        .filter((e) => e.type === 'approval.answered' && e.data.by === 'restart');
      expect(denials.map((e) => [e.taskId, e.data])).toEqual(
        expect.arrayContaining([
          [task.id, expect.objectContaining({ id: pushId, verdict: 'deny', by: 'restart' })],
          [null, expect.objectContaining({ id: makeId, verdict: 'deny', by: 'restart' })],
        ]),
      );
      expect(reconcileAfterRestart(after)).toEqual([]); // idempotent
    } finally {
      after.close();
    }
  });

  it('reads events in order, so a reused id is pending again after its earlier answer', () => {
    const asked = {
      type: 'approval.asked' as const,
      id: 'a222',
      tool: 'shell',
      risk: 'write' as const,
      context: 'agent' as const,
      reasons: [],
      expiresAt: 1,
    };
    timeline.record(null, asked);
    timeline.record(null, { type: 'approval.answered', id: 'a222', verdict: 'approve-once', by: 'cli' });
    timeline.record(null, asked);
    timeline.record(null, { ...asked, id: 'a333' });
    timeline.record(null, { type: 'approval.timedout', id: 'a333', verdict: 'deny', by: 'timeout' });
    expect(reconcileAfterRestart(timeline)).toEqual(['a222']);
  });
});

describe('terminal prompt', () => {
  const pending = (over: Partial<PendingApproval> = {}): PendingApproval => ({
    ...req(),
    id: 'a7k2',
    createdAt: 0,
    expiresAt: 299_000,
    ...over,
  });

  function term() {
    const input = new PassThrough();
    const output = new PassThrough();
    let shown = '';
    output.on('data', (c) => {
      shown += c;
    });
    const rl = createInterface({ input, output, terminal: false });
    return { input, rl, shown: () => shown };
  }

  /** Waits until the terminal has shown `text` (the prompt a person would answer). */
  const untilShown = (t: { shown(): string }, text: string) =>
    waitFor(() => t.shown().includes(text), `the terminal to show ${JSON.stringify(text)}`, {
      detail: () => `shown so far: ${JSON.stringify(t.shown())}`,
    });

  it('renders tool, command, cwd, risk, reasons and the deadline, with control characters made visible', () => {
    const text = renderApproval(pending({ command: 'ls\u001b[2K\rrm -rf ~', reasons: ['a', 'b'] }), 0);
    expect(text).toContain('approval a7k2');
    expect(text).toContain('4m59s');
    expect(text).toContain('shell (risk: destructive, context: agent)');
    expect(text).toContain('command  ls\\x1b[2K\\rrm -rf ~');
    expect(text).toContain('cwd      /workspace');
    expect(text).toMatch(/why +a\n +b/);
    expect(text).not.toContain('\u001b');
    const tool = renderApproval(pending({ tool: 'write_file', command: undefined, input: { path: 'x' } }), 0);
    expect(tool).toContain('input    {"path":"x"}');
    expect(tool).not.toContain('[A]');
  });

  it('parses a, A, d, D and inline messages; anything else is asked again', () => {
    const p = pending();
    expect(parseAnswer('a', p)).toEqual({ kind: 'approve-once' });
    expect(parseAnswer(' A ', p)).toEqual({ kind: 'approve-task' });
    expect(parseAnswer('d', p)).toEqual({ kind: 'deny' });
    expect(parseAnswer('D', p)).toBe('ask-message');
    expect(parseAnswer('d use make clean', p)).toEqual({ kind: 'deny', message: 'use make clean' });
    for (const bad of ['', 'y', 'yes', 'approve', 'aa', 'A!']) expect(parseAnswer(bad, p)).toBeUndefined();
    expect(parseAnswer('A', pending({ command: undefined }))).toBeUndefined();
  });

  it('reads an answer through a real readline, re-asking after a bad one', async () => {
    const t = term();
    const answer = promptApproval(pending(), t.rl);
    // Each line is typed after its prompt is shown, as a person would.
    await untilShown(t, '> ');
    t.input.write('yes\n');
    await untilShown(t, 'please type one of');
    t.input.write('A\n');
    await expect(answer).resolves.toEqual({ kind: 'approve-task' });
    const denial = promptApproval(pending(), t.rl);
    t.input.write('D\n');
    await untilShown(t, 'message for the agent: ');
    t.input.write('try make clean first\n');
    await expect(denial).resolves.toEqual({ kind: 'deny', message: 'try make clean first' });
    t.rl.close();
  });

  it('gives up without answering when the input closes or the signal aborts', async () => {
    const t = term();
    const ac = new AbortController();
    const aborted = promptApproval(pending(), t.rl, { signal: ac.signal });
    ac.abort();
    await expect(aborted).resolves.toBeUndefined();
    const closed = promptApproval(pending(), t.rl);
    t.input.end();
    await expect(closed).resolves.toBeUndefined();
    await expect(promptApproval(pending(), t.rl)).resolves.toBeUndefined();
  });

  it('attaches to a broker: one prompt at a time, withdrawn when answered elsewhere', async () => {
    const broker = new MemoryApprovalBroker();
    const t = term();
    const detach = attachTerminalPrompt({
      broker,
      rl: t.rl as Interface,
      answer: (id, a) => broker.answer(id, { ...a, by: 'terminal' }),
    });
    const first = broker.request(req({ command: 'first-cmd' }));
    const second = broker.request(req({ command: 'second-cmd' }));
    await untilShown(t, 'first-cmd');
    expect(t.shown()).not.toContain('second-cmd');
    broker.answer(broker.list()[0]!.id, { kind: 'deny', by: 'cli' });
    await expect(first).resolves.toMatchObject({ kind: 'deny', by: 'cli' });
    await untilShown(t, 'second-cmd');
    t.input.write('a\n');
    await expect(second).resolves.toMatchObject({ kind: 'approve-once', by: 'terminal' });
    detach();
    t.rl.close();
  });
});
