import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type AgentEvent, runAgentTask } from '../../src/host/agent/index.js';
import { CoworkError } from '../../src/host/errors.js';
import { BudgetTracker, type BudgetTrackerOptions } from '../../src/host/guardrails/index.js';
import { Timeline } from '../../src/host/timeline/index.js';
import { defaultTools } from '../../src/host/tools/index.js';
import {
  AnthropicApiStandIn,
  apiError,
  presentedKey,
  reply,
  text,
  toolUse,
} from '../helpers/anthropic-api.js';
import { waitFor } from '../helpers/wait.js';
import { execResult, RecordingToolContext } from './agent-test-context.js';

const KEY = 'sk-ant-api03-unit-test-key-DO-NOT-LEAK-7f3a9c';

let api: AnthropicApiStandIn;
let dir: string;
let timeline: Timeline;
let ctx: RecordingToolContext;
let taskId: string;

beforeEach(async () => {
  api = await AnthropicApiStandIn.start({ apiKey: KEY });
  dir = mkdtempSync(join(tmpdir(), 'agent-loop-'));
  timeline = Timeline.open(join(dir, 'timeline.db'));
  taskId = timeline.createTask({ title: 'test', context: 'agent', origin: 'test' }).id;
  ctx = new RecordingToolContext(taskId);
});

afterEach(async () => {
  timeline.close();
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

function run(
  opts: {
    budget?: BudgetTracker;
    events?: AgentEvent[];
    sleeps?: number[];
    key?: string;
    signal?: AbortSignal;
  } = {},
) {
  const client = new Anthropic({ apiKey: opts.key ?? KEY, baseURL: api.baseURL });
  return runAgentTask({
    prompt: 'create hello.py that prints hello, run it, then finish',
    model: 'claude-sonnet-4-5',
    client,
    tools: defaultTools(),
    ctx,
    budget: opts.budget ?? budget(),
    timeline,
    onEvent: (e) => opts.events?.push(e),
    ...(opts.signal ? { signal: opts.signal } : {}),
    sleep: async (ms) => {
      opts.sleeps?.push(ms);
    },
  });
}

const budget = (limits: Omit<BudgetTrackerOptions, 'model'> = {}) =>
  new BudgetTracker({ model: 'claude-sonnet-4-5', ...limits });

const types = () => timeline.query({ taskId }).map((e) => e.type);

describe('agent loop against the local Messages API', () => {
  it('runs a multi-step task: write a file, run it, task_complete', async () => {
    api.enqueue(
      reply([
        text('I will write the file.'),
        toolUse('write_file', { path: 'hello.py', content: 'print("hello")\n' }),
      ]),
      reply([toolUse('shell', { command: 'python3 hello.py' })]),
      reply([toolUse('task_complete', { summary: 'hello.py prints hello' })]),
    );
    ctx.shell = async () => execResult({ stdout: 'hello\n' });
    const events: AgentEvent[] = [];
    const result = await run({ events });

    expect(result.outcome).toBe('completed');
    expect(result.summary).toBe('hello.py prints hello');
    expect(result.iterations).toBe(3);
    expect(result.filesChanged).toEqual(['hello.py']);
    expect(result.usage).toEqual({ input: 300, output: 60, cacheWrite: 0, cacheRead: 0 });
    expect(ctx.session.files.get('/workspace/hello.py')?.toString()).toBe('print("hello")\n');
    expect(ctx.authorizeCalls[0]).toMatchObject({
      kind: 'tool',
      tool: 'write_file',
      risk: 'write',
      paths: [{ path: '/workspace/hello.py', access: 'write' }],
    });
    expect(ctx.shellCalls.map((c) => c.command)).toEqual(['python3 hello.py']);
    expect(ctx.shellCalls[0]?.opts?.signal).toBe(ctx.signal);

    // The model was sent the tool results, in order, and saw the command's output.
    const reqs = api.messageRequests;
    expect(reqs).toHaveLength(3);
    const third = reqs[2]?.body.messages;
    const lastUser = third[third.length - 1];
    expect(lastUser.content[0]).toMatchObject({ type: 'tool_result', is_error: false });
    expect(lastUser.content[0].content).toContain('hello');
    // streamed text reached the terminal callback
    expect(
      events
        .filter((e) => e.type === 'text')
        .map((e) => (e as { text: string }).text)
        .join(''),
    ).toBe('I will write the file.');
    expect(types()).toEqual([
      'task.started',
      'model.call',
      'budget',
      'tool.call',
      'tool.result',
      'model.call',
      'budget',
      'tool.call',
      'tool.result',
      'model.call',
      'budget',
      'tool.call',
      'tool.result',
    ]);
  });

  it('sends the system prompt and tools with cache breakpoints and JSON schemas from zod', async () => {
    api.enqueue(reply([text('done')]));
    const result = await run();
    expect(result.outcome).toBe('completed');
    expect(result.summary).toBe('done');
    const body = api.messageRequests[0]?.body;
    expect(body.stream).toBe(true);
    expect(body.model).toBe('claude-sonnet-4-5');
    expect(body.system[0].text).toContain('/workspace');
    expect(body.system[0].text).toContain('Linux virtual machine');
    expect(body.system[0].cache_control).toEqual({ type: 'ephemeral' });
    expect(body.tools.map((t: { name: string }) => t.name)).toEqual([
      'shell',
      'read_file',
      'write_file',
      'edit_file',
      'list_directory',
      'search_files',
      'task_complete',
    ]);
    expect(body.tools.at(-1).cache_control).toEqual({ type: 'ephemeral' });
    const shell = body.tools[0].input_schema;
    expect(shell).toMatchObject({ type: 'object', required: ['command'], additionalProperties: false });
    expect(shell.$schema).toBeUndefined();
    expect(body.messages.at(-1).content.at(-1).cache_control).toEqual({ type: 'ephemeral' });
  });

  it('feeds a denied command back to the model with the reason, and the model continues', async () => {
    ctx.policy = (req) =>
      req.kind === 'shell' && req.command.startsWith('sudo')
        ? { allowed: false, reason: 'sudo is blocked by builtin:sudo' }
        : { allowed: true };
    api.enqueue(
      reply([toolUse('shell', { command: 'sudo apt-get install jq' })]),
      reply([toolUse('shell', { command: 'python3 -c "print(1)"' })]),
      reply([toolUse('task_complete', { summary: 'used python instead' })]),
    );
    const result = await run();
    expect(result.outcome).toBe('completed');
    const second = api.messageRequests[1]?.body.messages.at(-1).content[0];
    expect(second.is_error).toBe(true);
    expect(second.content).toContain('Command denied: sudo is blocked by builtin:sudo');
    expect(ctx.shellCalls.map((c) => c.command)).toEqual([
      'sudo apt-get install jq',
      'python3 -c "print(1)"',
    ]);
    const toolResults = timeline.query({ taskId, types: ['tool.result'] });
    expect(toolResults[0]?.data).toMatchObject({ name: 'shell', isError: true });
  });

  it('reports a timed-out command to the model', async () => {
    ctx.shell = async () => execResult({ exitCode: null, signal: 'KILL', timedOut: true, stdout: 'partial' });
    api.enqueue(
      reply([toolUse('shell', { command: 'sleep 999', timeout_seconds: 5 })]),
      reply([text('gave up')]),
    );
    await run();
    const fed = api.messageRequests[1]?.body.messages.at(-1).content[0];
    expect(fed.is_error).toBe(true);
    expect(fed.content).toContain('timed out after 5s');
    expect(ctx.shellCalls[0]?.opts?.timeoutMs).toBe(5000);
  });

  it('answers an unknown tool and invalid input with an error result instead of running anything', async () => {
    api.enqueue(
      reply([toolUse('rm_rf', { path: '/' }), toolUse('write_file', { path: 'a.txt' })]),
      reply([text('ok')]),
    );
    await run();
    const [unknown, invalid] = api.messageRequests[1]!.body.messages.at(-1).content;
    expect(unknown.is_error).toBe(true);
    expect(unknown.content).toContain('There is no tool "rm_rf"');
    expect(invalid.is_error).toBe(true);
    expect(invalid.content).toContain('content');
    expect(ctx.authorizeCalls).toHaveLength(0);
    expect(ctx.session.files.size).toBe(0);
  });

  it('retries a 429 after the server’s retry-after, and the retry is in the timeline', async () => {
    api.enqueue(
      apiError(429, 'rate_limit_error', 'Number of request tokens has exceeded your per-minute rate limit', {
        'retry-after': '7',
      }),
      apiError(529, 'overloaded_error', 'Overloaded'),
      reply([text('fine now')]),
    );
    const sleeps: number[] = [];
    const events: AgentEvent[] = [];
    const result = await run({ sleeps, events });
    expect(result.outcome).toBe('completed');
    expect(api.messageRequests).toHaveLength(3);
    expect(sleeps[0]).toBe(7000);
    expect(sleeps).toHaveLength(2);
    const errors = timeline.query({ taskId, types: ['error'] });
    expect(errors[0]?.data).toMatchObject({ code: 'rate_limit_error', where: 'model.call' });
    expect(errors[1]?.data).toMatchObject({ code: 'overloaded_error' });
    const call = timeline.query({ taskId, types: ['model.call'] })[0];
    expect(call?.data).toMatchObject({ attempt: 3, stopReason: 'end_turn' });
    expect(events.filter((e) => e.type === 'model.retry')).toHaveLength(2);
  });

  it('retries an overloaded error that arrives mid-stream', async () => {
    api.enqueue(
      { kind: 'stream-error', type: 'overloaded_error', message: 'Overloaded' },
      reply([text('ok')]),
    );
    const result = await run({ sleeps: [] });
    expect(result.outcome).toBe('completed');
    expect(timeline.query({ taskId, types: ['model.call'] })[0]?.data).toMatchObject({ attempt: 2 });
  });

  it('gives up after the retry limit with a failed outcome that says why', async () => {
    for (let i = 0; i < 5; i++) api.enqueue(apiError(500, 'api_error', 'Internal server error'));
    const result = await run({ sleeps: [] });
    expect(result.outcome).toBe('failed');
    expect(result.summary).toContain('after 5 attempts');
    expect(api.messageRequests).toHaveLength(5);
  });

  it('rejects a bad API key with a CoworkError that says how to fix it', async () => {
    api.enqueue(reply([text('never sent')]));
    const err = await run({ key: 'sk-ant-wrong' }).catch((e: unknown) => e);
    expect(CoworkError.is(err, 'denied')).toBe(true);
    expect((err as Error).message).toBe('Anthropic API key rejected — run `cowork-vm secrets set anthropic`');
    expect(api.messageRequests).toHaveLength(1);
    expect(api.pending).toBe(1);
  });

  it('stops at the iteration limit before the call that would exceed it', async () => {
    for (let i = 0; i < 5; i++) api.enqueue(reply([toolUse('shell', { command: `echo ${i}` })]));
    const result = await run({ budget: budget({ maxIterations: 2 }) });
    expect(result.outcome).toBe('limit');
    expect(result.limit).toBe('maxIterationsPerTask');
    expect(result.iterations).toBe(2);
    expect(api.messageRequests).toHaveLength(2);
    expect(ctx.shellCalls).toHaveLength(2);
    const lim = timeline.query({ taskId, types: ['task.limit'] });
    expect(lim[0]?.data).toMatchObject({ name: 'maxIterationsPerTask', figure: 2, limit: 2 });
  });

  it('stops at the token limit after the call that went over, without running its tools', async () => {
    api.enqueue(
      reply([toolUse('shell', { command: 'echo 1' })], { input_tokens: 400, output_tokens: 100 }),
      reply([toolUse('shell', { command: 'echo 2' })], { input_tokens: 500, output_tokens: 100 }),
      reply([text('never')]),
    );
    const result = await run({ budget: budget({ maxTokens: 1000 }) });
    expect(result.outcome).toBe('limit');
    expect(result.limit).toBe('maxTokensPerTask');
    expect(ctx.shellCalls.map((c) => c.command)).toEqual(['echo 1']);
    expect(api.messageRequests).toHaveLength(2);
    expect(timeline.query({ taskId, types: ['task.limit'] })[0]?.data).toMatchObject({
      figure: 1100,
      limit: 1000,
    });
  });

  it('stops at the cost limit', async () => {
    // 100k input tokens at $3/M = $0.30 per call; limit $0.50 → the second call goes over.
    api.enqueue(
      reply([toolUse('shell', { command: 'echo 1' })], { input_tokens: 100_000, output_tokens: 0 }),
      reply([toolUse('shell', { command: 'echo 2' })], { input_tokens: 100_000, output_tokens: 0 }),
    );
    const result = await run({ budget: budget({ maxCostUsd: 0.5 }) });
    expect(result.outcome).toBe('limit');
    expect(result.limit).toBe('maxCostPerTask');
    expect(result.costUsd).toBeCloseTo(0.6);
    // each model.call carries its own cost; the budget events carry the running total
    const calls = timeline
      .query({ taskId, types: ['model.call'] })
      .map((e) => (e.data as { costUsd: number }).costUsd);
    expect(calls.map((c) => Number(c.toFixed(6)))).toEqual([0.3, 0.3]);
    expect(ctx.shellCalls).toHaveLength(1);
  });

  it('cancellation aborts an in-flight model call', async () => {
    api.enqueue({ kind: 'hang' });
    const pending = run();
    await waitFor(() => api.hangAborts.length === 1, 'the model call to be in flight');
    ctx.controller.abort('user pressed Ctrl-C');
    const result = await pending;
    expect(result.outcome).toBe('cancelled');
    await api.hangAborts[0]; // the server saw the connection closed
    expect(timeline.query({ taskId, types: ['task.cancelled'] })).toHaveLength(1);
  });

  it('cancellation aborts a running guest command and asks the model nothing more', async () => {
    let sawAbort = false;
    ctx.shell = (_cmd, opts) =>
      new Promise((resolve) => {
        opts?.signal?.addEventListener('abort', () => {
          sawAbort = true;
          resolve(execResult({ exitCode: null, signal: 'KILL' }));
        });
      });
    api.enqueue(reply([toolUse('shell', { command: 'sleep 600' })]), reply([text('never asked')]));
    const pending = run();
    await waitFor(() => ctx.shellCalls.length === 1, 'the guest command to start');
    ctx.controller.abort();
    const result = await pending;
    expect(result.outcome).toBe('cancelled');
    expect(sawAbort).toBe(true);
    expect(api.messageRequests).toHaveLength(1);
  });

  it('a separate abort signal reaches the guest command; the context keeps its own members', async () => {
    const outer = new AbortController();
    let seen: AbortSignal | undefined;
    ctx.shell = (_cmd, o) =>
      new Promise((resolve) => {
        seen = o?.signal;
        o?.signal?.addEventListener('abort', () => resolve(execResult({ exitCode: null, signal: 'KILL' })));
      });
    api.enqueue(
      reply([
        toolUse('write_file', { path: 'a.txt', content: 'x' }),
        toolUse('shell', { command: 'sleep 600' }),
      ]),
    );
    const pending = run({ signal: outer.signal });
    await waitFor(() => ctx.shellCalls.length === 1, 'the guest command to start');
    outer.abort('terminal');
    const result = await pending;
    expect(result.outcome).toBe('cancelled');
    expect(seen?.aborted).toBe(true);
    expect(ctx.signal.aborted).toBe(false);
    // the wrapped context still reached the real session and recorded the authorize call
    expect(ctx.session.files.get('/workspace/a.txt')?.toString()).toBe('x');
    expect(ctx.authorizeCalls).toHaveLength(1);
    expect(timeline.query({ taskId, types: ['task.cancelled'] })[0]?.data).toMatchObject({ by: 'terminal' });
  });

  it('never puts the API key into a guest command, a guest file or a message', async () => {
    api.enqueue(
      reply([toolUse('shell', { command: 'env; cat /proc/self/environ' })]),
      reply([toolUse('write_file', { path: 'notes.txt', content: 'hi' })]),
      reply([toolUse('task_complete', { summary: 'done' })]),
    );
    await run();
    for (const c of ctx.shellCalls) expect(JSON.stringify(c)).not.toContain(KEY);
    for (const e of ctx.session.execs) expect(JSON.stringify(e)).not.toContain(KEY);
    for (const [, data] of ctx.session.files) expect(data.toString()).not.toContain(KEY);
    for (const r of api.messageRequests) {
      expect(r.raw).not.toContain(KEY);
      expect(presentedKey(r)).toBe(KEY); // only ever in the auth header, host → API
    }
    expect(JSON.stringify(timeline.query({ taskId }))).not.toContain(KEY);
  });
});
