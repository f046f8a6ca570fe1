import { describe, expect, it } from 'vitest';
import { egressRows, formatBytes, formatDuration, summarize } from '../../src/dashboard/format.js';
import { LiveState, TIMELINE_KEEP } from '../../src/dashboard/live.js';
import { href, parseRoute } from '../../src/dashboard/routes.js';
import { budgetMeters, toolSteps, workspaceChanges } from '../../src/dashboard/task-view-model.js';
import type { TimelineEntry } from '../../src/dashboard/types.js';

/** The dashboard's pure half: what the pages derive from the timeline and the live events. */

let nextId = 1;
const entry = (
  type: string,
  data: Record<string, unknown>,
  taskId: string | null = 't-1',
): TimelineEntry => ({
  id: nextId++,
  ts: 1_700_000_000_000,
  taskId,
  type,
  data,
});

describe('routes', () => {
  const all = () => true;
  it('parses page, argument and query', () => {
    const r = parseRoute('#/tasks/t-abc?x=1', all);
    expect(r.page).toBe('tasks');
    expect(r.arg).toBe('t-abc');
    expect(r.query.get('x')).toBe('1');
    expect(parseRoute('#/timeline?task=t-1&type=exec.', all).query.get('type')).toBe('exec.');
  });
  it('falls back to the overview for unknown pages and for pages the session may not use', () => {
    expect(parseRoute('', all).page).toBe('overview');
    expect(parseRoute('#/nope', all).page).toBe('overview');
    expect(parseRoute('#/devices', (p) => p !== 'devices').page).toBe('overview');
  });
  it('href round-trips an argument that needs encoding', () => {
    const h = href('tasks', 'a/b c');
    expect(parseRoute(h, all).arg).toBe('a/b c');
    expect(href('timeline', undefined, { task: 't-1' })).toBe('#/timeline?task=t-1');
  });
});

describe('LiveState', () => {
  it('records who answered an approval, from approval.answered and approval.timedout', () => {
    const live = new LiveState();
    live.addTimeline([
      entry('approval.answered', { id: 'a1', verdict: 'deny', by: 'terminal', message: 'no' }),
      entry('approval.timedout', { id: 'a2', verdict: 'deny', by: 'timeout' }),
    ]);
    expect(live.answers.get('a1')).toEqual({ verdict: 'deny', by: 'terminal', message: 'no' });
    expect(live.answers.get('a2')?.by).toBe('timeout');
  });
  it('ignores an entry seen twice (live and from a query) and keeps id order', () => {
    const live = new LiveState();
    const a = entry('vm.started', {});
    const b = entry('vm.stopped', {});
    const c = entry('vm.stopped', {});
    const seen: number[] = [];
    live.on('timeline', (e) => seen.push(e.id));
    live.addTimeline([c]);
    live.addTimeline([a, b, c]);
    expect(live.timeline.map((e) => e.id)).toEqual([a.id, b.id, c.id]);
    expect(seen).toEqual([c.id, a.id, b.id]);
  });
  it('keeps only the newest entries', () => {
    const live = new LiveState();
    const many = Array.from({ length: TIMELINE_KEEP + 10 }, () => entry('budget', {}));
    live.addTimeline(many);
    expect(live.timeline.length).toBe(TIMELINE_KEEP);
    expect(live.timeline[0]?.id).toBe(many[10]?.id);
  });
  it('accumulates streamed text per task and tells listeners; unsubscribing stops them', () => {
    const live = new LiveState();
    let calls = 0;
    const off = live.on('task', () => calls++);
    live.addTaskEvent({ taskId: 't-1', type: 'text', text: 'Hel' });
    live.addTaskEvent({ taskId: 't-1', type: 'text', text: 'lo' });
    off();
    live.addTaskEvent({ taskId: 't-1', type: 'finished', outcome: 'completed', filesChanged: [] });
    expect(live.taskText.get('t-1')).toBe('Hello');
    expect(live.finished.get('t-1')).toBe('completed');
    expect(calls).toBe(2);
  });
});

describe('task view model', () => {
  it('pairs each tool call with its decision, answer, exit and result', () => {
    const steps = toolSteps([
      entry('tool.call', { toolUseId: 'u1', name: 'shell', inputExcerpt: '{"command":"rm x"}' }),
      entry('command.requested', { tool: 'shell', command: 'rm x', context: 'agent' }),
      entry('policy.decision', { effect: 'ask', reasons: ['rm deletes files'], layer: 'context' }),
      entry('approval.answered', { id: 'a1', verdict: 'approve-once', by: 'dashboard:d1' }),
      entry('exec.finished', { exitCode: 0, signal: null }),
      entry('tool.result', { toolUseId: 'u1', name: 'shell', isError: false, outputExcerpt: 'ok' }),
      entry('tool.call', { toolUseId: 'u2', name: 'read_file', inputExcerpt: 'a.txt' }),
    ]);
    expect(steps).toHaveLength(2);
    expect(steps[0]).toMatchObject({
      name: 'shell',
      decision: { effect: 'ask', reasons: ['rm deletes files'] },
      approval: { verdict: 'approve-once', by: 'dashboard:d1' },
      exec: { exitCode: 0 },
      result: { isError: false, output: 'ok' },
    });
    expect(steps[1]?.result).toBeUndefined();
  });
  it('shows the latest budget against its limits, and says when there is no limit or no price', () => {
    const budget = (totalTokens: number, costUsd: number | null, limits: Record<string, number>) =>
      entry('budget', { totalTokens, costUsd, iterations: 2, limits });
    const meters = budgetMeters([
      budget(10, 0.1, {}),
      budget(1500, 0.25, { maxTokens: 10_000, maxCostUsd: 1 }),
    ]);
    expect(meters.map((m) => m.label)).toEqual(['Tokens', 'Cost', 'Iterations']);
    expect(meters[0]).toMatchObject({ value: 1500, max: 10_000, text: '1,500 of 10,000' });
    expect(meters[1]).toMatchObject({ value: 0.25, max: 1, text: '$0.2500 of $1.0000' });
    expect(meters[2]).toMatchObject({ value: 2, text: '2 (no limit)' });
    expect(budgetMeters([budget(5, null, {})])[1]?.text).toBe('no price known for this model');
    expect(budgetMeters([])).toEqual([]);
  });
});

describe('workspace changes of a task', () => {
  it('is the end checkpoint’s change set, the latest record winning; nothing before the task ends', () => {
    expect(workspaceChanges([entry('tool.call', { toolUseId: 'u1', name: 'shell' })])).toBeUndefined();
    const c = workspaceChanges([
      entry('checkpoint.created', { checkpoint: 't-1', kind: 'task', label: 'x', files: 3 }),
      entry('workspace.changes', { checkpoint: 't-1', changes: ['A  old.txt'], skipped: [] }),
      entry('workspace.changes', {
        checkpoint: 't-1',
        changes: ['A  notes.txt', 'm  run.sh (644 → 755)'],
        changesTruncated: true,
        skipped: [{ path: 'big.bin', reason: 'over maxFileSizeMB' }],
      }),
    ]);
    expect(c).toEqual({
      checkpoint: 't-1',
      lines: ['A  notes.txt', 'm  run.sh (644 → 755)'],
      truncated: true,
      skipped: ['big.bin (over maxFileSizeMB)'],
    });
  });
});

describe('format', () => {
  it('durations and sizes', () => {
    expect(formatDuration(59_000)).toBe('59s');
    expect(formatDuration(3_723_000)).toBe('1h 2m 3s');
    expect(formatDuration(90_061_000)).toBe('1d 1h 1m');
    expect(formatDuration(-1)).toBe('—');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(50 * 1024 * 1024)).toBe('50 MiB');
  });
  it('egress rows come from egress.request only, newest first', () => {
    const rows = egressRows([
      entry('egress.request', {
        method: 'CONNECT',
        host: 'a.test',
        port: 443,
        decision: 'allow',
        stage: 'allow-list',
        reason: 'listed',
        bytesIn: 10,
        bytesOut: 5,
      }),
      entry('exec.started', { command: 'curl' }),
      entry('egress.request', {
        method: 'GET',
        host: 'b.test',
        port: 80,
        decision: 'deny',
        stage: 'default',
        reason: 'not listed',
        status: 403,
        bytesIn: 0,
        bytesOut: 0,
      }),
    ]);
    expect(rows.map((r) => r.host)).toEqual(['b.test', 'a.test']);
    expect(rows[0]).toMatchObject({ decision: 'deny', reason: 'default: not listed', status: 403 });
    expect(rows[1]).toMatchObject({ bytesIn: 10, bytesOut: 5, port: 443 });
  });
  it('summaries name who answered and what ran', () => {
    expect(
      summarize(entry('approval.answered', { id: 'a1', verdict: 'deny', by: 'cli', message: 'no' })),
    ).toBe('approval a1: denied by cli — no');
    expect(summarize(entry('command.requested', { tool: 'shell', command: 'ls', origin: 'agent' }))).toBe(
      'shell requested by agent: ls',
    );
    expect(summarize(entry('something.new', { a: 1, b: 'x', nested: { c: 1 } }))).toBe('a=1 b=x');
  });
});
