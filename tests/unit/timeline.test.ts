import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import {
  capUtf8,
  formatEvent,
  formatTask,
  type StoredEvent,
  TASK_ID_PATTERN,
  Timeline,
  type TimelineEvent,
} from '../../src/host/timeline/index.js';
import { waitFor } from '../helpers/wait.js';

let dir: string;
let file: string;
let tl: Timeline;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cowork-timeline-'));
  file = join(dir, 'state', 'timeline.db');
  tl = Timeline.open(file, { excerptCapBytes: 64 });
});
afterEach(() => {
  tl.close();
  rmSync(dir, { recursive: true, force: true });
});

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return CoworkError.is(err) ? err.code : `not a CoworkError: ${String(err)}`;
  }
  return undefined;
}

const task = () => tl.createTask({ title: 'build it', context: 'agent', origin: 'cli' });

describe('Timeline tasks', () => {
  it('creates a task with a short typeable id and records task.started', () => {
    const t = task();
    expect(t.id).toMatch(TASK_ID_PATTERN);
    expect(t.id).toMatch(/^t-[a-z2-9]{6}$/);
    expect(t).toMatchObject({ title: 'build it', context: 'agent', origin: 'cli', status: 'running' });
    expect(t.outcome).toBeUndefined();
    const events = tl.query({ taskId: t.id });
    expect(events.map((e) => e.type)).toEqual(['task.started']);
    expect(events[0]?.data).toEqual({ title: 'build it', context: 'agent', origin: 'cli' });
  });

  it('finishes a task once; a second finish is invalidState and an unknown id notFound', () => {
    const t = task();
    const done = tl.finishTask(t.id, { outcome: 'limit', summary: 'maxTokensPerTask reached' });
    expect(done).toMatchObject({ status: 'limit', outcome: 'limit', summary: 'maxTokensPerTask reached' });
    expect(done.finishedAt).toBeDefined();
    expect(codeOf(() => tl.finishTask(t.id, { outcome: 'completed' }))).toBe('invalidState');
    expect(codeOf(() => tl.finishTask('t-nope00', { outcome: 'completed' }))).toBe('notFound');
    expect(codeOf(() => tl.getTask('t-nope00'))).toBe('notFound');
    expect(tl.query({ taskId: t.id, types: ['task.finished'] })).toHaveLength(1);
  });

  it('lists newest first, filters by status, and abandons running tasks after a restart', () => {
    let now = 1_000;
    tl.close();
    tl = Timeline.open(file, { now: () => now++ });
    const a = task();
    const b = task();
    const c = task();
    tl.finishTask(b.id, { outcome: 'completed' });
    expect(tl.listTasks().map((t) => t.id)).toEqual([c.id, b.id, a.id]);
    expect(tl.listTasks({ limit: 1 }).map((t) => t.id)).toEqual([c.id]);
    expect(tl.listTasks({ status: 'running' }).map((t) => t.id)).toEqual([c.id, a.id]);
    expect(tl.abandonRunningTasks('controller restarted').sort()).toEqual([a.id, c.id].sort());
    expect(tl.getTask(a.id)).toMatchObject({ status: 'failed', summary: 'controller restarted' });
    expect(tl.listTasks({ status: 'running' })).toEqual([]);
  });

  it('rejects an invalid task', () => {
    expect(codeOf(() => tl.createTask({ title: '', context: 'agent', origin: 'cli' }))).toBe(
      'invalidArgument',
    );
    expect(codeOf(() => tl.createTask({ title: 'x', context: 'root' as 'agent', origin: 'cli' }))).toBe(
      'invalidArgument',
    );
  });
});

describe('Timeline.record', () => {
  it('stores typed events and reads them back unchanged', () => {
    const t = task();
    const e = tl.record(t.id, {
      type: 'policy.decision',
      effect: 'ask',
      reasons: ['not on the allow list'],
      layer: 'context',
      tool: 'shell',
      command: 'rm -rf build',
    });
    expect(e).toMatchObject({ taskId: t.id, type: 'policy.decision' });
    expect(e.id).toBeGreaterThan(0);
    const [back] = tl.query({ afterId: e.id - 1, limit: 1 });
    expect(back).toEqual(e);
  });

  it('records events outside any task with taskId null', () => {
    const e = tl.record(null, { type: 'vm.started', accel: 'tcg', share: '9p', bootMs: 8200 });
    expect(e.taskId).toBeNull();
    expect(tl.query({ types: ['vm.started'] })[0]?.taskId).toBeNull();
  });

  it('refuses unknown types, misspelt fields and wrong value types', () => {
    expect(codeOf(() => tl.record(null, { type: 'exec.exploded' } as unknown as TimelineEvent))).toBe(
      'invalidArgument',
    );
    expect(
      codeOf(() =>
        tl.record(null, {
          type: 'vm.started',
          accel: 'tcg',
          share: '9p',
          bootMs: 1,
          bootMS: 2,
        } as TimelineEvent),
      ),
    ).toBe('invalidArgument');
    expect(codeOf(() => tl.record(null, { type: 'vm.started', accel: 'tcg', share: '9p', bootMs: -1 }))).toBe(
      'invalidArgument',
    );
    expect(tl.query()).toEqual([]);
  });

  it('never stores a secret value: secret events accept names only', () => {
    const attempt = { type: 'secret.used', name: 'GITHUB_TOKEN', value: 'ghp_supersecret' } as TimelineEvent;
    expect(codeOf(() => tl.record(null, attempt))).toBe('invalidArgument');
    tl.record(null, { type: 'secret.used', name: 'GITHUB_TOKEN', purpose: 'egress api.github.com' });
    const raw = new Database(file, { readonly: true });
    const rows = raw.prepare('SELECT data FROM events').all() as { data: string }[];
    raw.close();
    expect(rows.map((r) => r.data).join('\n')).not.toContain('ghp_supersecret');
  });

  it('refuses an event for a task that does not exist', () => {
    expect(codeOf(() => tl.record('t-zzzzzz', { type: 'exec.started', command: 'ls' }))).toBe('notFound');
  });

  it('caps excerpts at the configured size on a character boundary and records the cap', () => {
    const t = task();
    const stdout = 'é'.repeat(100); // 200 bytes, 2 per character
    const e = tl.record(t.id, {
      type: 'exec.finished',
      exitCode: 0,
      signal: null,
      durationMs: 12,
      stdoutBytes: 200,
      stderrBytes: 3,
      truncated: false,
      stdoutExcerpt: stdout,
      stderrExcerpt: 'err',
    });
    if (e.type !== 'exec.finished') throw new Error('wrong type');
    expect(e.data.stdoutExcerpt).toBe('é'.repeat(32));
    expect(e.data.stderrExcerpt).toBe('err');
    expect(e.data.excerptCapBytes).toBe(64);
    expect(e.data.excerptTruncated).toBe(true);
    const back = tl.query({ types: ['exec.finished'] })[0];
    expect(back).toEqual(e);
  });

  it('keeps the end of a console tail', () => {
    const e = tl.record(null, {
      type: 'vm.crashed',
      reason: 'QEMU exited',
      consoleTail: `${'x'.repeat(100)}PANIC`,
    });
    if (e.type !== 'vm.crashed') throw new Error('wrong type');
    expect(e.data.consoleTail).toHaveLength(64);
    expect(e.data.consoleTail?.endsWith('PANIC')).toBe(true);
  });

  it('leaves short excerpts whole and says nothing was cut', () => {
    const e = tl.record(null, {
      type: 'tool.call',
      toolUseId: 'tu1',
      name: 'shell',
      inputExcerpt: '{"command":"ls"}',
    });
    expect(e.data).toMatchObject({
      inputExcerpt: '{"command":"ls"}',
      excerptCapBytes: 64,
      excerptTruncated: false,
    });
  });
});

describe('Timeline.query', () => {
  it('filters by task, afterId, exact type and type family, limit and last', () => {
    const a = task();
    const b = task();
    tl.record(a.id, { type: 'exec.started', command: 'ls' });
    tl.record(b.id, {
      type: 'approval.asked',
      id: 'a7k2',
      tool: 'shell',
      command: 'rm x',
      risk: 'destructive',
      context: 'agent',
      reasons: ['r'],
      expiresAt: 1,
    });
    tl.record(b.id, { type: 'approval.answered', id: 'a7k2', verdict: 'deny', by: 'cli' });
    tl.record(a.id, { type: 'exec.started', command: 'pwd' });

    expect(tl.query({ taskId: a.id }).map((e) => e.type)).toEqual([
      'task.started',
      'exec.started',
      'exec.started',
    ]);
    expect(tl.query({ types: ['approval.*'] }).map((e) => e.type)).toEqual([
      'approval.asked',
      'approval.answered',
    ]);
    expect(tl.query({ types: ['exec.started', 'approval.answered'] })).toHaveLength(3);
    const all = tl.query();
    expect(all.map((e) => e.id)).toEqual([...all.map((e) => e.id)].sort((x, y) => x - y));
    expect(tl.query({ afterId: all[3]!.id }).map((e) => e.id)).toEqual(all.slice(4).map((e) => e.id));
    expect(tl.query({ limit: 2 }).map((e) => e.id)).toEqual(all.slice(0, 2).map((e) => e.id));
    expect(tl.query({ last: 2 }).map((e) => e.id)).toEqual(all.slice(-2).map((e) => e.id));
    expect(tl.lastEventId()).toBe(all.at(-1)!.id);
    // A family pattern is a prefix match on the dotted name, not a LIKE wildcard the caller controls.
    expect(tl.query({ types: ['approval%.*' as 'approval.*'] })).toEqual([]);
  });
});

describe('Timeline.subscribe and follow', () => {
  it('tells subscribers after commit; unsubscribe stops; a throwing subscriber changes nothing', () => {
    const seen: StoredEvent[] = [];
    tl.subscribe(() => {
      throw new Error('broken frontend');
    });
    const off = tl.subscribe((e) => seen.push(e));
    const t = task();
    tl.record(t.id, { type: 'exec.started', command: 'ls' });
    off();
    tl.record(t.id, { type: 'exec.started', command: 'pwd' });
    expect(seen.map((e) => e.type)).toEqual(['task.started', 'exec.started']);
    expect(tl.query({ taskId: t.id })).toHaveLength(3);
  });

  it('follows a task from the start until it finishes', async () => {
    const t = task();
    tl.record(t.id, { type: 'exec.started', command: 'ls' });
    const got: string[] = [];
    const done = (async () => {
      for await (const e of tl.follow({ taskId: t.id, intervalMs: 5, untilTaskFinished: true }))
        got.push(e.type);
    })();
    await waitFor(() => got.length === 2, 'the follower to read the events so far');
    tl.record(null, { type: 'vm.stopped' }); // another task's or no task's events are not followed
    tl.finishTask(t.id, { outcome: 'completed' });
    await done;
    expect(got).toEqual(['task.started', 'exec.started', 'task.finished']);
  });

  it('ends a follow of a task that finished earlier, and notices the end even when filtering types', async () => {
    const t = task();
    tl.record(t.id, { type: 'exec.started', command: 'ls' });
    tl.finishTask(t.id, { outcome: 'failed' });
    const late: StoredEvent[] = [];
    for await (const e of tl.follow({
      taskId: t.id,
      afterId: tl.lastEventId(),
      intervalMs: 5,
      untilTaskFinished: true,
    })) {
      late.push(e);
    }
    expect(late).toEqual([]);

    const u = task();
    const got: string[] = [];
    const done = (async () => {
      for await (const e of tl.follow({
        taskId: u.id,
        types: ['exec.*'],
        intervalMs: 5,
        untilTaskFinished: true,
      })) {
        got.push(e.type);
      }
    })();
    tl.record(u.id, { type: 'exec.started', command: 'make' });
    tl.record(u.id, { type: 'policy.decision', effect: 'allow', reasons: [], layer: 'user' });
    tl.finishTask(u.id, { outcome: 'completed' });
    await done;
    expect(got).toEqual(['exec.started']);
    await expect(async () => {
      for await (const _ of tl.follow({ untilTaskFinished: true })) break;
    }).rejects.toMatchObject({ code: 'invalidArgument' });
  });

  it('stops following when the signal aborts', async () => {
    const ac = new AbortController();
    const got: number[] = [];
    const done = (async () => {
      for await (const e of tl.follow({ afterId: tl.lastEventId(), intervalMs: 5, signal: ac.signal }))
        got.push(e.id);
    })();
    tl.record(null, { type: 'vm.stopped' });
    await waitFor(() => got.length === 1, 'the follower to read the new event');
    ac.abort();
    await done;
    expect(got).toHaveLength(1);
  });
});

describe('Timeline file', () => {
  it('is WAL, private to the user, and readable by a read-only opener while the writer is open', () => {
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const raw = new Database(file, { readonly: true });
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();
    const t = task();
    const ro = Timeline.open(file, { readonly: true });
    expect(ro.getTask(t.id).title).toBe('build it');
    expect(codeOf(() => ro.record(null, { type: 'vm.stopped' }))).toBe('invalidState');
    ro.close();
  });

  it('fails clearly on a missing file (read-only), a newer schema, or use after close', () => {
    expect(codeOf(() => Timeline.open(join(dir, 'missing.db'), { readonly: true }))).toBe('unavailable');
    const newer = join(dir, 'newer.db');
    const raw = new Database(newer);
    raw.pragma('user_version = 99');
    raw.close();
    expect(codeOf(() => Timeline.open(newer))).toBe('unsupported');
    tl.close();
    expect(codeOf(() => tl.query())).toBe('invalidState');
    tl.close(); // idempotent
  });

  it('reopens an existing timeline and keeps its events', () => {
    const t = task();
    tl.close();
    tl = Timeline.open(file);
    expect(tl.getTask(t.id).status).toBe('running');
    expect(tl.query({ taskId: t.id })).toHaveLength(1);
  });
});

describe('capUtf8', () => {
  it('never exceeds the cap and never splits a character', () => {
    for (const s of ['abc', 'é'.repeat(10), '😀'.repeat(10), 'a😀b€c']) {
      for (let cap = 0; cap <= 45; cap++) {
        for (const from of ['start', 'end'] as const) {
          const { text, truncated } = capUtf8(s, cap, from);
          expect(Buffer.byteLength(text)).toBeLessThanOrEqual(cap);
          expect(text).not.toContain('\uFFFD');
          expect(truncated).toBe(Buffer.byteLength(s) > cap);
          expect(from === 'start' ? s.startsWith(text) : s.endsWith(text)).toBe(true);
        }
      }
    }
  });
});

describe('formatEvent', () => {
  const samples: TimelineEvent[] = [
    { type: 'task.started', title: 'fix tests', context: 'agent', origin: 'telegram:42' },
    { type: 'task.limit', name: 'maxTokensPerTask', figure: 100_512, limit: 100_000 },
    {
      type: 'policy.decision',
      effect: 'deny',
      reasons: ['sudo is never allowed'],
      layer: 'guardrails',
      rule: 'builtin:sudo',
    },
    { type: 'approval.answered', id: 'a7k2', verdict: 'approve-once', by: 'cli' },
    {
      type: 'exec.finished',
      exitCode: null,
      signal: 'KILL',
      durationMs: 1500,
      stdoutBytes: 2048,
      stderrBytes: 0,
      truncated: true,
      timedOut: true,
    },
    {
      type: 'budget',
      tokensIn: 10,
      tokensOut: 5,
      cacheWrite: 0,
      cacheRead: 0,
      totalTokens: 15,
      costUsd: 0.0001,
      iterations: 1,
      limits: { maxTokens: 100_000, maxCostUsd: 1, maxIterations: 50 },
    },
    {
      type: 'egress.request',
      method: 'CONNECT',
      host: 'pypi.org',
      port: 443,
      decision: 'allow',
      bytesIn: 5,
      bytesOut: 6,
      durationMs: 3,
    },
    { type: 'control.lockout', scope: 'auth', key: '127.0.0.1', until: 99 },
  ];

  it('renders every sample as exactly one line with its type', () => {
    for (const s of samples) {
      const stored = tl.record(null, s);
      const line = formatEvent(stored, { utc: true });
      expect(line.split('\n')).toHaveLength(1);
      expect(line).toContain(s.type);
    }
    const lines = tl.query().map((e) => formatEvent(e, { utc: true }));
    expect(lines[1]).toContain('maxTokensPerTask reached: 100512 of 100000');
    expect(lines[2]).toContain('DENY by guardrails builtin:sudo: sudo is never allowed');
    expect(lines[4]).toContain('killed by KILL in 1.5s');
    expect(lines[5]).toContain('15/100000 tokens, $0.0001/$1, 1/50 iterations');
    expect(lines[7]).toContain('scope=auth key=127.0.0.1 until=99');
  });

  it('makes control characters visible so recorded text cannot drive the terminal', () => {
    const e = tl.record(null, { type: 'exec.started', command: 'echo hi\n\u001b[2Jgone\r' });
    const line = formatEvent(e);
    expect(line).not.toMatch(/[\u0000-\u001f]/);
    expect(line).toContain('echo hi\\n\\x1b[2Jgone\\r');
    const t = task();
    expect(formatTask(t)).toContain(`${t.id}  running`);
  });
});
