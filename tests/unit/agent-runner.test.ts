import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentTaskRunner, type EnforcementPath } from '../../src/host/agent/index.js';
import type { ExecRequest, Origin } from '../../src/host/api/controller.js';
import { CoworkError } from '../../src/host/errors.js';
import type { SecretStore } from '../../src/host/secrets/index.js';
import { Timeline } from '../../src/host/timeline/index.js';
import { scopeGuestFiles, type ToolPolicyRequest } from '../../src/host/tools/index.js';
import { AnthropicApiStandIn, reply, toolUse } from '../helpers/anthropic-api.js';
import { execResult, MemoryGuestSession } from './agent-test-context.js';

const KEY = 'sk-ant-api03-runner-unit-KEY-91ac';

class MapStore implements SecretStore {
  constructor(readonly values: Record<string, string> = {}) {}
  async get(name: string) {
    return this.values[name];
  }
  async set(name: string, value: string) {
    this.values[name] = value;
  }
  async remove(name: string) {
    return delete this.values[name];
  }
  async list() {
    return Object.keys(this.values).sort();
  }
}

/** The controller's enforcement path, recorded: every call says which origin and task it came from. */
class RecordingController implements EnforcementPath {
  readonly authorized: { req: ToolPolicyRequest; origin: Origin; taskId?: string }[] = [];
  readonly execs: { req: ExecRequest; origin: Origin }[] = [];
  readonly guest = new MemoryGuestSession();
  async authorize(req: ToolPolicyRequest, origin: Origin, taskId: string | undefined) {
    this.authorized.push({ req, origin, taskId });
    const guest = scopeGuestFiles(this.guest, { workspace: dir, paths: req.paths ?? [] });
    return {
      allowed: true as const,
      decision: { effect: 'allow' as const, reasons: [], layer: 'tool' as const },
      guest,
    };
  }
  async exec(req: ExecRequest, origin: Origin) {
    this.execs.push({ req, origin });
    return {
      decision: { effect: 'allow' as const, reasons: [], layer: 'tool' as const },
      result: execResult({ stdout: 'ok' }),
    };
  }
}

let dir: string;
let timeline: Timeline;
let api: AnthropicApiStandIn;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'agent-runner-'));
  timeline = Timeline.open(join(dir, 'timeline.db'));
  api = await AnthropicApiStandIn.start({ apiKey: KEY });
});
afterEach(async () => {
  timeline.close();
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

function runner(
  opts: { store?: SecretStore; controller?: EnforcementPath; maxCostUsd?: number; model?: string } = {},
) {
  return new AgentTaskRunner({
    controller: opts.controller,
    timeline,
    secrets: opts.store ?? new MapStore({ anthropic: KEY }),
    limits: { maxFileSizeMB: 1, maxCostUsd: opts.maxCostUsd },
    model: opts.model ?? 'claude-sonnet-4-5',
    baseURL: api.baseURL,
    env: {},
  });
}

describe('AgentTaskRunner', () => {
  it('runs the model’s tool calls in the agent context even when the local user started the task', async () => {
    const controller = new RecordingController();
    const r = runner({ controller });
    api.enqueue(
      reply([toolUse('write_file', { path: 'a.txt', content: 'x' }), toolUse('shell', { command: 'ls' })]),
      reply([toolUse('task_complete', { summary: 'done' })]),
    );
    const live: string[] = [];
    const unsubscribe = r.subscribe((taskId, e) =>
      live.push(`${taskId === id ? 'this' : 'other'}:${e.type}`),
    );
    const { id } = await r.start({ prompt: 'go' }, { id: 'cli', context: 'local' });
    const result = await r.wait(id);
    unsubscribe();
    expect(live).toContain('this:tool.call');
    expect(live.at(-1)).toBe('this:finished');
    expect(result?.outcome).toBe('completed');
    expect(timeline.getTask(id)).toMatchObject({
      status: 'completed',
      summary: 'done',
      context: 'agent',
      origin: 'cli',
    });
    expect(controller.authorized[0]).toMatchObject({
      origin: { id: `task:${id}`, context: 'agent' },
      taskId: id,
    });
    expect(controller.execs[0]).toMatchObject({
      req: { command: 'ls', taskId: id },
      origin: { context: 'agent' },
    });
    expect(r.running()).toBe(0);
  });

  it('extendContext sees its task registered: waiting on the task from there ends with the task', async () => {
    const controller = new RecordingController();
    const seen: string[] = [];
    let r: AgentTaskRunner | undefined;
    r = new AgentTaskRunner({
      controller,
      timeline,
      secrets: new MapStore({ anthropic: KEY }),
      limits: { maxFileSizeMB: 1 },
      model: 'claude-sonnet-4-5',
      baseURL: api.baseURL,
      env: {},
      extendContext: (base) => {
        seen.push(`running:${r?.running()}`);
        // What the sandbox does to close the task's browser and egress scope when the task ends.
        void r?.wait(base.taskId).then(() => seen.push(`ended:${timeline.getTask(base.taskId).status}`));
        return base;
      },
    });
    api.enqueue(
      reply([toolUse('shell', { command: 'ls' })]),
      reply([toolUse('task_complete', { summary: 'done' })]),
    );
    const { id } = await r.start({ prompt: 'go' }, { id: 'cli', context: 'local' });
    await r.wait(id);
    await new Promise((res) => setImmediate(res));
    expect(seen).toEqual(['running:1', 'ended:completed']);
  });

  it('keeps the stricter gateway context for tasks started from a remote channel', async () => {
    const controller = new RecordingController();
    api.enqueue(
      reply([toolUse('shell', { command: 'ls' })]),
      reply([toolUse('task_complete', { summary: 'ok' })]),
    );
    const r = runner({ controller });
    const { id } = await r.start({ prompt: 'go' }, { id: 'telegram:42', context: 'gateway' });
    await r.wait(id);
    expect(controller.execs[0]?.origin.context).toBe('gateway');
  });

  it('prefers the caller’s ANTHROPIC_API_KEY override and records which source was used (never the value)', async () => {
    const r = runner({
      controller: new RecordingController(),
      store: new MapStore({ anthropic: 'sk-ant-stale' }),
    });
    api.enqueue(reply([toolUse('task_complete', { summary: 'ok' })]));
    const { id } = await r.start({ prompt: 'go', apiKeyOverride: KEY }, { id: 'cli', context: 'local' });
    await r.wait(id);
    expect(timeline.getTask(id).status).toBe('completed');
    const used = timeline.query({ taskId: id, types: ['secret.used'] });
    expect(used[0]?.data).toEqual({ name: 'anthropic', purpose: 'model calls (env)' });
    expect(JSON.stringify(timeline.query({ taskId: id }))).not.toContain(KEY);
  });

  it('refuses to start without a key, or with an unpriced model under a cost budget, and creates no task', async () => {
    const none = runner({ controller: new RecordingController(), store: new MapStore() });
    await expect(none.start({ prompt: 'go' }, { id: 'cli', context: 'local' })).rejects.toMatchObject({
      code: 'notFound',
      message: expect.stringContaining('cowork-vm secrets set anthropic'),
    });
    const unpriced = runner({
      controller: new RecordingController(),
      model: 'claude-imaginary-9',
      maxCostUsd: 1,
    });
    await expect(unpriced.start({ prompt: 'go' }, { id: 'cli', context: 'local' })).rejects.toMatchObject({
      code: 'invalidArgument',
    });
    expect(timeline.listTasks({})).toHaveLength(0);
    expect(api.messageRequests).toHaveLength(0);
  });

  it('fails closed when not attached to a controller, and cancel of an unknown task is notFound', async () => {
    const r = runner();
    const err = await r.start({ prompt: 'go' }, { id: 'cli', context: 'local' }).catch((e: unknown) => e);
    expect(CoworkError.is(err, 'internal')).toBe(true);
    expect(() => r.cancel('t-nope00', { id: 'cli', context: 'local' })).toThrow(/not running/);
  });
});
