import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentTaskRunner, type EnforcementPath } from '../../src/host/agent/index.js';
import type { SecretStore } from '../../src/host/secrets/index.js';
import { Timeline } from '../../src/host/timeline/index.js';
import { scopeGuestFiles } from '../../src/host/tools/guest-files.js';
import { AnthropicApiStandIn, reply, toolUse } from '../helpers/anthropic-api.js';
import { execResult, MemoryGuestSession } from './agent-test-context.js';

/**
 * `tasks.start { limits }` reaches the task's budget — on every transport, since they share the
 * contract's binding (tests/unit/api-contract.test.ts) — and can only tighten the configured one.
 */
const KEY = 'sk-ant-api03-limits-unit-KEY-5d2e';

const store: SecretStore = {
  get: async (name) => (name === 'anthropic' ? KEY : undefined),
  set: async () => {},
  remove: async () => false,
  list: async () => ['anthropic'],
};

const allowAll: EnforcementPath = {
  authorize: async (req, _origin, _taskId, signal) => ({
    allowed: true,
    decision: { effect: 'allow', reasons: [], layer: 'tool' },
    guest: scopeGuestFiles(new MemoryGuestSession(), {
      workspace: '/host/ws',
      paths: req.paths ?? [],
      withheld: [],
      signal: signal ?? new AbortController().signal,
    }),
  }),
  exec: async () => ({
    decision: { effect: 'allow', reasons: [], layer: 'tool' },
    result: execResult({ stdout: 'ok' }),
  }),
};

let dir: string;
let timeline: Timeline;
let api: AnthropicApiStandIn;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'task-limits-'));
  timeline = Timeline.open(join(dir, 'timeline.db'));
  api = await AnthropicApiStandIn.start({ apiKey: KEY });
});
afterEach(async () => {
  timeline.close();
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

function runner(configured: { maxIterations?: number; maxTokens?: number }) {
  return new AgentTaskRunner({
    controller: allowAll,
    timeline,
    secrets: store,
    limits: { maxFileSizeMB: 1, ...configured },
    model: 'claude-sonnet-4-5',
    baseURL: api.baseURL,
    env: {},
  });
}

/** Runs a task whose model keeps calling tools; returns how it ended and the budget it ran under. */
async function run(r: AgentTaskRunner, limits?: { maxIterations?: number; maxTokens?: number }) {
  api.enqueue(
    reply([toolUse('shell', { command: 'ls' })]),
    reply([toolUse('shell', { command: 'ls' })]),
    reply([toolUse('shell', { command: 'ls' })]),
    reply([toolUse('task_complete', { summary: 'done' })]),
  );
  const { id } = await r.start(
    { prompt: 'go', ...(limits ? { limits } : {}) },
    { id: 'cli', context: 'local' },
  );
  const result = await r.wait(id);
  const budgets = timeline.query({ taskId: id, types: ['budget'] });
  const last = budgets.at(-1)?.data as { limits: Record<string, number | undefined> } | undefined;
  return { outcome: result?.outcome, limits: last?.limits, iterations: result?.iterations };
}

describe('tasks.start limits', () => {
  it('tighten the configured budget', async () => {
    const r = await run(runner({ maxIterations: 10 }), { maxIterations: 1 });
    expect(r.limits?.maxIterations).toBe(1);
    expect(r.outcome).toBe('limit');
  });

  it('apply where nothing is configured', async () => {
    const r = await run(runner({}), { maxIterations: 2, maxTokens: 1_000_000 });
    expect(r.limits).toMatchObject({ maxIterations: 2, maxTokens: 1_000_000 });
    expect(r.outcome).toBe('limit');
  });

  it('never raise it: a looser request keeps the configured limit', async () => {
    const r = await run(runner({ maxIterations: 1 }), { maxIterations: 100 });
    expect(r.limits?.maxIterations).toBe(1);
    expect(r.outcome).toBe('limit');
  });

  it('without limits the task runs under the configured budget', async () => {
    const r = await run(runner({}));
    expect(r.outcome).toBe('completed');
  });
});
