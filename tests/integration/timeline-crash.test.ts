import { type ChildProcess, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryApprovalBroker, reconcileAfterRestart } from '../../src/host/approvals/index.js';
import { Timeline } from '../../src/host/timeline/index.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The controller is a separate process that can be SIGKILLed at any moment. These tests run the
 * real Timeline code in a child node process (transpiled from src, following its imports) and
 * kill it, then check from this process that every event it reported as committed is there.
 */

const ROOT = resolve(import.meta.dirname, '../..');
let work: string;
let childScript: string;

/** Transpile `entry` and every relative import it reaches into `outRoot`, keeping the layout. */
function transpileGraph(entry: string, outRoot: string): void {
  const todo = [resolve(ROOT, entry)];
  const done = new Set<string>();
  while (todo.length > 0) {
    const src = todo.pop()!;
    if (done.has(src)) continue;
    done.add(src);
    const out = ts.transpileModule(readFileSync(src, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    const dest = join(outRoot, src.slice(ROOT.length)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(dest, out);
    for (const m of out.matchAll(/from\s+'(\.{1,2}\/[^']+)\.js'/g))
      todo.push(resolve(dirname(src), `${m[1]}.ts`));
  }
}

const CHILD = `
import { appendFileSync } from 'node:fs';
import { Timeline } from './src/host/timeline/index.js';
const [file, log, mode, count] = process.argv.slice(2);
const tl = Timeline.open(file);
const t = tl.createTask({ title: 'crash me', context: 'agent', origin: 'test' });
appendFileSync(log, 'task ' + t.id + '\\n');
const n = Number(count);
for (let i = 0; mode === 'loop' || i < n; i++) {
  const e = tl.record(t.id, { type: 'exec.started', command: 'echo ' + i });
  // Reported only after record() returned, i.e. after the transaction committed.
  appendFileSync(log, 'committed ' + e.id + '\\n');
  if (mode === 'slow') await new Promise((r) => setTimeout(r, 15));
}
if (mode === 'self') process.kill(process.pid, 'SIGKILL');
if (mode === 'slow') tl.finishTask(t.id, { outcome: 'completed', summary: 'done' });
`;

/** A controller that asks two approvals, sees one answered, and dies with the other pending. */
const APPROVALS_CHILD = `
import { appendFileSync } from 'node:fs';
import { Timeline } from './src/host/timeline/index.js';
import { MemoryApprovalBroker } from './src/host/approvals/index.js';
const [file, log] = process.argv.slice(2);
const tl = Timeline.open(file);
const t = tl.createTask({ title: 'deploy', context: 'agent', origin: 'test' });
const broker = new MemoryApprovalBroker({ timeline: tl });
broker.on('pending', (p) => appendFileSync(log, 'asked ' + p.id + '\\n'));
const req = { taskId: t.id, tool: 'shell', risk: 'destructive', context: 'agent', reasons: ['not allowed'] };
const answered = broker.request({ ...req, command: 'make' });
void broker.request({ ...req, command: 'git push --force' });
broker.answer(broker.list()[0].id, { kind: 'approve-once', by: 'cli' });
await answered;
appendFileSync(log, 'task ' + t.id + '\\n');
process.kill(process.pid, 'SIGKILL');
`;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'cowork-timeline-crash-'));
  transpileGraph('src/host/timeline/index.ts', work);
  transpileGraph('src/host/approvals/index.ts', work);
  writeFileSync(join(work, 'package.json'), '{"type":"module"}');
  symlinkSync(join(ROOT, 'node_modules'), join(work, 'node_modules'));
  childScript = join(work, 'child.mjs');
  writeFileSync(childScript, CHILD);
  writeFileSync(join(work, 'approvals-child.mjs'), APPROVALS_CHILD);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function run(name: string, mode: 'self' | 'loop' | 'slow', count: number) {
  const file = join(work, name, 'timeline.db');
  const log = join(work, `${name}.log`);
  writeFileSync(log, '');
  const child = spawn(process.execPath, [childScript, file, log, mode, String(count)], {
    cwd: work,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (c) => {
    stderr += c;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.on('exit', (code, signal) => res({ code, signal })),
  );
  const reported = () => {
    const lines = readFileSync(log, 'utf8').split('\n');
    const taskId = lines.find((l) => l.startsWith('task '))?.slice(5);
    const ids = lines.filter((l) => l.startsWith('committed ')).map((l) => Number(l.slice(10)));
    return { taskId, ids };
  };
  return { file, child, exited, reported, stderr: () => stderr };
}

/** Waits for `cond`; a child that exits first fails the wait at once. */
function untilChild(cond: () => boolean, what: string, child: ChildProcess): Promise<boolean> {
  return waitFor(cond, what, {
    timeoutMs: 20_000,
    stopIf: () => (child.exitCode !== null || child.signalCode !== null) && 'the child exited',
  });
}

function checkIntact(file: string): void {
  const raw = new Database(file, { readonly: true });
  expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
  raw.close();
}

describe('Timeline survives SIGKILL', () => {
  it('keeps every event a child committed before it SIGKILLed itself', async () => {
    const r = run('self', 'self', 300);
    const exit = await r.exited;
    expect(r.stderr()).toBe('');
    expect(exit.signal).toBe('SIGKILL');
    const { taskId, ids } = r.reported();
    expect(ids).toHaveLength(300);

    checkIntact(r.file);
    const tl = Timeline.open(r.file);
    try {
      const stored = tl.query({ taskId, types: ['exec.started'], limit: 10_000 });
      expect(stored.map((e) => e.id)).toEqual(ids);
      expect(stored.map((e) => (e.type === 'exec.started' ? e.data.command : ''))).toEqual(
        ids.map((_, i) => `echo ${i}`),
      );
      // The killed controller's task is still "running"; the next controller fails it.
      expect(tl.getTask(taskId!).status).toBe('running');
      expect(tl.abandonRunningTasks('controller restarted')).toEqual([taskId]);
    } finally {
      tl.close();
    }
  });

  it('keeps every reported event when killed from outside mid-stream', async () => {
    const r = run('outside', 'loop', 0);
    await untilChild(() => r.reported().ids.length >= 200, '200 committed events', r.child);
    r.child.kill('SIGKILL');
    const exit = await r.exited;
    expect(exit.signal).toBe('SIGKILL');
    const { taskId, ids } = r.reported();
    expect(ids.length).toBeGreaterThanOrEqual(200);

    checkIntact(r.file);
    const tl = Timeline.open(r.file, { readonly: true });
    try {
      const stored = new Set(tl.query({ taskId, limit: 1_000_000 }).map((e) => e.id));
      const missing = ids.filter((id) => !stored.has(id));
      expect(missing).toEqual([]);
    } finally {
      tl.close();
    }
  });
});

describe('Timeline across processes', () => {
  it('lets a read-only reader follow a task another process is writing, until it finishes', async () => {
    const r = run('follow', 'slow', 20);
    await untilChild(() => r.reported().taskId !== undefined && existsSync(r.file), 'the task id', r.child);
    const taskId = r.reported().taskId!;
    const reader = Timeline.open(r.file, { readonly: true });
    const got: string[] = [];
    try {
      for await (const e of reader.follow({ taskId, intervalMs: 10, untilTaskFinished: true }))
        got.push(e.type);
    } finally {
      reader.close();
    }
    const exit = await r.exited;
    expect(r.stderr()).toBe('');
    expect(exit.code).toBe(0);
    expect(got).toEqual(['task.started', ...Array(20).fill('exec.started'), 'task.finished']);
  });
});

describe('approvals across a controller crash', () => {
  it('denies, by restart, the approval a SIGKILLed controller left pending, and only that one', async () => {
    const file = join(work, 'approvals', 'timeline.db');
    const log = join(work, 'approvals.log');
    writeFileSync(log, '');
    const child = spawn(process.execPath, [join(work, 'approvals-child.mjs'), file, log], {
      cwd: work,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (c) => {
      stderr += c;
    });
    const exit = await new Promise<NodeJS.Signals | null>((res) => child.on('exit', (_c, sig) => res(sig)));
    expect(stderr).toBe('');
    expect(exit).toBe('SIGKILL');
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    const [approvedId, pendingId] = lines.filter((l) => l.startsWith('asked ')).map((l) => l.slice(6));
    const taskId = lines.find((l) => l.startsWith('task '))?.slice(5);

    const tl = Timeline.open(file);
    try {
      expect(reconcileAfterRestart(tl)).toEqual([pendingId]);
      const outcomes = tl
        .query({ taskId, types: ['approval.answered'] })
        .map((e) => (e.type === 'approval.answered' ? [e.data.id, e.data.verdict, e.data.by] : []));
      expect(outcomes).toEqual([
        [approvedId, 'approve-once', 'cli'],
        [pendingId, 'deny', 'restart'],
      ]);
      // A new broker knows nothing of the dead one's approvals: nobody can approve it now.
      const broker = new MemoryApprovalBroker({ timeline: tl });
      expect(() => broker.answer(pendingId!, { kind: 'approve-once', by: 'cli' })).toThrow(
        /no pending approval/,
      );
    } finally {
      tl.close();
    }
  });
});
