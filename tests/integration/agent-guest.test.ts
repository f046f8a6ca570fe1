import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AgentTaskRunner } from '../../src/host/agent/index.js';
import type { Origin } from '../../src/host/api/controller.js';
import type { PendingApproval } from '../../src/host/approvals/types.js';
import { LocalControlClient } from '../../src/host/control/local-client.js';
import type { RunningController } from '../../src/host/sandbox/serve.js';
import type { SecretStore } from '../../src/host/secrets/index.js';
import { Timeline } from '../../src/host/timeline/index.js';
import { AnthropicApiStandIn, apiError, reply, text, toolUse } from '../helpers/anthropic-api.js';
import { makeTestEnv, startTestSandbox, type TestSandboxEnv } from '../helpers/sandbox.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The agent end to end against a real QEMU guest: the real controller (policy, approvals,
 * timeline), the real GuestSession, the real SDK talking to the local Messages API stand-in.
 * Approvals are answered over the controller's local control socket — a second connection,
 * exactly what `cowork-vm approve` uses.
 */

const KEY = 'sk-ant-api03-guest-test-KEY-3d9f0b1c';
const cli: Origin = { id: 'cli', context: 'local' };

/** A SecretStore that holds the fake key, standing in for the keychain (tested on its own). */
class OneKeyStore implements SecretStore {
  async get(name: string) {
    return name === 'anthropic' ? KEY : undefined;
  }
  async set() {}
  async remove() {
    return false;
  }
  async list() {
    return ['anthropic'];
  }
}

describe('agent tasks in a real guest', () => {
  let t: TestSandboxEnv;
  let sb: RunningController;
  let api: AnthropicApiStandIn;
  let timeline: Timeline;
  let approver: LocalControlClient;
  /** Decides each pending approval; default approve once. */
  let decide: (p: PendingApproval) => { kind: 'approve-once' | 'approve-task' | 'deny'; message?: string };
  let answering: NodeJS.Timeout;
  const answered: PendingApproval[] = [];

  beforeAll(async () => {
    t = makeTestEnv('agent');
    sb = await startTestSandbox(t);
    api = await AnthropicApiStandIn.start({ apiKey: KEY });
    timeline = Timeline.open(sb.controller.timelinePath);
    approver = await LocalControlClient.connect(sb.socketPath, sb.workspace);
    answering = setInterval(async () => {
      const pending = await approver.call<PendingApproval[]>('approvals.list').catch(() => []);
      for (const p of pending) {
        if (answered.some((a) => a.id === p.id)) continue;
        answered.push(p);
        await approver.call('approvals.answer', { id: p.id, ...decide(p) }).catch(() => undefined);
      }
    }, 100);
  });

  afterAll(async () => {
    clearInterval(answering);
    approver?.close();
    timeline?.close();
    await api?.close();
    await sb?.shutdown();
    t?.cleanup();
  });

  beforeEach(() => {
    decide = () => ({ kind: 'approve-once' });
    answered.length = 0;
    api.clear();
  });

  function runner(limits: { maxTokens?: number; maxCostUsd?: number; maxIterations?: number } = {}) {
    return new AgentTaskRunner({
      controller: sb.controller,
      timeline,
      secrets: new OneKeyStore(),
      limits: { maxFileSizeMB: 10, ...limits },
      model: 'claude-sonnet-4-5',
      baseURL: api.baseURL,
      retry: { baseDelayMs: 10 },
      env: {},
    });
  }

  async function runTask(r: AgentTaskRunner, prompt: string) {
    const { id } = await r.start({ prompt }, cli);
    await r.wait(id);
    return { id, task: timeline.getTask(id), events: timeline.query({ taskId: id }) };
  }

  const lastToolResult = (i: number) => api.messageRequests[i]?.body.messages.at(-1).content[0];

  it('runs a multi-step task: writes a file, runs it in the guest (approved), ends with task_complete', async () => {
    const before = api.messageRequests.length;
    api.enqueue(
      reply([toolUse('write_file', { path: 'hello.py', content: 'print("hello from the guest")\n' })]),
      reply([toolUse('shell', { command: 'python3 hello.py && uname -s' })]),
      reply([toolUse('task_complete', { summary: 'wrote and ran hello.py' })]),
    );
    const { task, events } = await runTask(runner(), 'write hello.py and run it');
    expect(task.status).toBe('completed');
    expect(task.summary).toBe('wrote and ran hello.py');
    expect(readFileSync(join(sb.workspace, 'hello.py'), 'utf8')).toBe('print("hello from the guest")\n');
    const fed = api.messageRequests[before + 2]?.body.messages.at(-1).content[0];
    expect(fed.content).toContain('Exit code: 0');
    expect(fed.content).toContain('hello from the guest');
    expect(fed.content).toContain('Linux');
    expect(answered.map((a) => a.command)).toEqual(['python3 hello.py && uname -s']);
    const types = events.map((e) => e.type);
    for (const ty of [
      'task.started',
      'model.call',
      'tool.call',
      'policy.decision',
      'approval.asked',
      'exec.finished',
      'budget',
      'task.finished',
    ]) {
      expect(types).toContain(ty);
    }
  });

  it('asks for exactly one decision per tool call, for every default tool', async () => {
    writeFileSync(join(sb.workspace, 'one.txt'), 'alpha\n');
    api.enqueue(
      reply([toolUse('read_file', { path: 'one.txt' }, 'toolu_read')]),
      reply([toolUse('write_file', { path: 'deep/two.txt', content: 'beta\n' }, 'toolu_write')]),
      reply([
        toolUse('edit_file', { path: 'one.txt', old_string: 'alpha', new_string: 'gamma' }, 'toolu_edit'),
      ]),
      reply([toolUse('list_directory', { path: '.' }, 'toolu_list')]),
      reply([toolUse('search_files', { pattern: 'gamma' }, 'toolu_search')]),
      reply([toolUse('shell', { command: 'cat one.txt deep/two.txt' }, 'toolu_shell')]),
      reply([toolUse('task_complete', { summary: 'used every tool' }, 'toolu_done')]),
    );
    const { task, events } = await runTask(runner(), 'use every tool once');
    expect(task.status, task.summary ?? '').toBe('completed');
    // Between one tool.call and the next: one policy.decision (none for task_complete), at most one approval.
    const perCall = new Map<string, { decisions: number; approvals: number }>();
    let current: string | undefined;
    for (const e of events) {
      const data = e.data as { toolUseId?: string };
      if (e.type === 'tool.call') {
        current = data.toolUseId;
        perCall.set(current ?? '', { decisions: 0, approvals: 0 });
      } else if (current && e.type === 'policy.decision') perCall.get(current)!.decisions++;
      else if (current && e.type === 'approval.asked') perCall.get(current)!.approvals++;
    }
    for (const id of [
      'toolu_read',
      'toolu_write',
      'toolu_edit',
      'toolu_list',
      'toolu_search',
      'toolu_shell',
    ]) {
      expect(perCall.get(id)?.decisions, id).toBe(1);
      expect(perCall.get(id)?.approvals ?? 9, id).toBeLessThanOrEqual(1);
    }
    expect(perCall.get('toolu_done')).toEqual({ decisions: 0, approvals: 0 });
    expect(readFileSync(join(sb.workspace, 'one.txt'), 'utf8')).toBe('gamma\n');
    expect(readFileSync(join(sb.workspace, 'deep', 'two.txt'), 'utf8')).toBe('beta\n');
  });

  it("a decision's guest access reaches only the decided path, and a hostile folder name is one word", async () => {
    const hostile = [
      'inj/a$(touch /tmp/pwned-subst)/x.txt',
      "inj/b'; touch /tmp/pwned-quote; echo '/x.txt",
      'inj/c`touch /tmp/pwned-tick`/x.txt',
      'inj/d;touch /tmp/pwned-semi;/x.txt',
      'inj/-rf $HOME/x.txt',
    ];
    for (const rel of hostile) {
      const path = `/workspace/${rel}`;
      const auth = await sb.controller.authorize(
        {
          kind: 'tool',
          tool: 'write_file',
          risk: 'write',
          input: { path: rel },
          paths: [{ path, access: 'write' }],
        },
        cli,
        undefined,
      );
      expect(auth.allowed, rel).toBe(true);
      if (!auth.allowed) continue;
      // Through the same grant: another path, and the decided path read instead of written, are refused.
      await expect(auth.guest.writeFile('/workspace/inj/elsewhere.txt', 'x')).rejects.toMatchObject({
        code: 'denied',
      });
      await expect(auth.guest.readFile(path, { maxBytes: 100 })).rejects.toMatchObject({ code: 'denied' });
      await auth.guest.writeFile(path, 'literal');
      auth.guest.revoke();
      await expect(auth.guest.writeFile(path, 'again')).rejects.toMatchObject({ code: 'denied' });
      expect(readFileSync(join(sb.workspace, rel), 'utf8'), rel).toBe('literal');
    }
    expect(existsSync(join(sb.workspace, 'inj', 'elsewhere.txt'))).toBe(false);
    const markers = await sb.controller.exec({ command: 'ls /tmp | grep -c pwned; true' }, cli);
    expect(markers.result?.stdout.trim()).toBe('0');
  });

  it('feeds a denied command back to the model, which continues', async () => {
    const before = api.messageRequests.length;
    api.enqueue(
      reply([toolUse('shell', { command: 'sudo cat /etc/shadow' })]),
      reply([toolUse('shell', { command: 'echo continuing' })]),
      reply([toolUse('task_complete', { summary: 'worked around the denial' })]),
    );
    const { task } = await runTask(runner(), 'read the shadow file');
    expect(task.status).toBe('completed');
    const denied = api.messageRequests[before + 1]?.body.messages.at(-1).content[0];
    expect(denied.is_error).toBe(true);
    expect(denied.content).toMatch(/^Command denied: .*sudo/);
    expect(lastToolResult(before + 2).content).toContain('continuing');
  });

  it('a command denied at the approval prompt reaches the model with the approver’s message', async () => {
    decide = () => ({ kind: 'deny', message: 'not on this machine' });
    const before = api.messageRequests.length;
    api.enqueue(reply([toolUse('shell', { command: 'rm -rf build' })]), reply([text('ok, stopping')]));
    const { task } = await runTask(runner(), 'clean');
    expect(task.status).toBe('completed');
    expect(lastToolResult(before + 1).content).toContain('not on this machine');
  });

  it('stops at the iteration limit', async () => {
    const before = api.messageRequests.length;
    for (let i = 0; i < 4; i++) api.enqueue(reply([toolUse('read_file', { path: 'hello.py' })]));
    const { task, events } = await runTask(runner({ maxIterations: 2 }), 'loop');
    expect(task.status).toBe('limit');
    expect(api.messageRequests.length - before).toBe(2);
    expect(events.find((e) => e.type === 'task.limit')?.data).toMatchObject({
      name: 'maxIterationsPerTask',
      figure: 2,
      limit: 2,
    });
  });

  it('stops at the token limit and at the cost limit', async () => {
    api.enqueue(
      reply([toolUse('read_file', { path: 'hello.py' })], { input_tokens: 3000, output_tokens: 100 }),
      reply([text('never')]),
    );
    const tokens = await runTask(runner({ maxTokens: 2000 }), 'tokens');
    expect(tokens.task.status).toBe('limit');
    expect(tokens.events.find((e) => e.type === 'task.limit')?.data).toMatchObject({
      name: 'maxTokensPerTask',
    });
    expect(api.pending).toBe(1);

    api.clear();
    // 200k input tokens at $3/M = $0.60, over the $0.50 budget after the first call
    api.enqueue(
      reply([toolUse('read_file', { path: 'hello.py' })], { input_tokens: 200_000, output_tokens: 0 }),
      reply([text('never')]),
    );
    const cost = await runTask(runner({ maxCostUsd: 0.5 }), 'cost');
    expect(cost.task.status).toBe('limit');
    expect(api.pending).toBe(1);
    expect(cost.events.find((e) => e.type === 'task.limit')?.data).toMatchObject({ name: 'maxCostPerTask' });
  });

  it('retries a 429 (honouring retry-after) and then succeeds; the retry is in the timeline', async () => {
    api.enqueue(
      apiError(429, 'rate_limit_error', 'slow down', { 'retry-after': '1' }),
      reply([toolUse('task_complete', { summary: 'after the retry' })]),
    );
    const { task, events } = await runTask(runner(), 'retry');
    expect(task.status).toBe('completed');
    expect(events.find((e) => e.type === 'error')?.data).toMatchObject({ code: 'rate_limit_error' });
    expect(events.find((e) => e.type === 'model.call')?.data).toMatchObject({ attempt: 2 });
  });

  it('a rejected key (401) ends the task as denied with the fix in the summary', async () => {
    const r = new AgentTaskRunner({
      controller: sb.controller,
      timeline,
      secrets: new OneKeyStore(),
      limits: { maxFileSizeMB: 10 },
      baseURL: api.baseURL,
      env: {},
    });
    const { id } = await r.start({ prompt: 'x', apiKeyOverride: 'sk-ant-wrong' }, cli);
    await r.wait(id);
    const task = timeline.getTask(id);
    expect(task.status).toBe('denied');
    expect(task.summary).toBe('Anthropic API key rejected — run `cowork-vm secrets set anthropic`');
  });

  it('cancellation mid-command kills the guest command and records it', async () => {
    decide = () => ({ kind: 'approve-once' });
    api.enqueue(
      reply([toolUse('shell', { command: 'sleep 431; echo never' })]),
      reply([text('never asked')]),
    );
    const r = runner();
    const { id } = await r.start({ prompt: 'sleep' }, cli);
    await waitFor(
      () => timeline.query({ taskId: id, types: ['exec.started'] }).length,
      'the command to start',
      {
        timeoutMs: 30_000,
        intervalMs: 100,
      },
    );
    expect(timeline.query({ taskId: id, types: ['exec.started'] })).toHaveLength(1);
    r.cancel(id, cli);
    await r.wait(id);
    expect(timeline.getTask(id).status).toBe('cancelled');
    expect(timeline.query({ taskId: id, types: ['task.cancelled'] })[0]?.data).toMatchObject({ by: 'cli' });
    // '[s]leep' so the pattern does not match the shell running pgrep itself.
    const ps = await sb.controller.exec({ command: 'pgrep -af "[s]leep 431" || echo none' }, cli);
    expect(ps.result?.stdout.trim()).toBe('none');
    expect(api.pending).toBe(1); // the model was not asked again
  });

  it('the guest never sees the API key: not in env, /proc/*/environ, the workspace or the seed share', async () => {
    api.enqueue(
      reply([
        toolUse('shell', {
          command:
            'env > /workspace/env.txt; cat /proc/*/environ 2>/dev/null | tr "\\0" "\\n" > /workspace/environ.txt; true',
        }),
      ]),
      reply([toolUse('task_complete', { summary: 'dumped' })]),
    );
    const { task } = await runTask(runner(), 'dump env');
    expect(task.status).toBe('completed');
    const grep = await sb.controller.exec(
      // The key is assembled in the guest so that this command (which the timeline records) does not contain it.
      {
        command: `A='${KEY.slice(0, 12)}'; B='${KEY.slice(12)}'; grep -rl -- "$A$B" /workspace /proc/*/environ /run /etc /home 2>/dev/null; echo done`,
      },
      cli,
    );
    expect(grep.result?.stdout.trim()).toBe('done');
    const hostFiles = (dir: string): string[] =>
      readdirSync(dir, { recursive: true, encoding: 'utf8' })
        .map((f) => join(dir, f))
        .filter((f) => statSync(f, { throwIfNoEntry: false })?.isFile());
    // the workspace and everything in the sandbox state dir (seed share, keys, logs) on the host
    for (const f of [
      ...hostFiles(sb.workspace),
      ...hostFiles(sb.stateDir).filter((f) => !f.endsWith('.sock')),
    ]) {
      expect(readFileSync(f).includes(KEY), f).toBe(false);
    }
  });
});
