import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AgentTaskRunner } from '../../src/host/agent/index.js';
import type { Origin } from '../../src/host/api/controller.js';
import { defaultConfig } from '../../src/host/config/index.js';
import { EgressProxy } from '../../src/host/egress/index.js';
import { createPolicyEngine } from '../../src/host/policy/index.js';
import { Controller } from '../../src/host/sandbox/controller.js';
import type { Sandbox } from '../../src/host/sandbox/sandbox.js';
import { TaskScopes } from '../../src/host/sandbox/task-scope.js';
import { createTaskRunner } from '../../src/host/sandbox/tasks.js';
import type { ExecOptions, ExecResult } from '../../src/host/ssh/types.js';
import { Timeline } from '../../src/host/timeline/index.js';
import { AnthropicApiStandIn, apiError, reply, toolUse } from '../helpers/anthropic-api.js';
import { ScriptedBroker } from '../helpers/egress.js';
import { execResult, MemoryGuestSession } from './agent-test-context.js';

/**
 * One scope per task — command approvals, egress grants, proxy credentials — opened when the
 * task starts and gone when it ends, however it ends. The real task runner, Controller and
 * egress proxy's attribution; the guest is the seam (it records what each command was given).
 */

const KEY = 'sk-ant-api03-scope-unit-KEY-77c1';
const PROXY_URL = 'http://127.0.0.1:3128';
const local: Origin = { id: 'cli', context: 'local' };

let dir: string;
let timeline: Timeline;
let api: AnthropicApiStandIn;
let scopes: TaskScopes;
let proxy: EgressProxy;
let broker: ScriptedBroker;
let controller: Controller;
let runner: AgentTaskRunner;
let guestExecs: { command: string; env: Record<string, string> | undefined }[];
let guestExec: (command: string) => Promise<ExecResult>;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'task-scope-'));
  timeline = Timeline.open(join(dir, 'timeline.db'));
  api = await AnthropicApiStandIn.start({ apiKey: KEY });
  proxy = new EgressProxy({});
  scopes = new TaskScopes({ attribution: proxy.tasks, proxyUrl: PROXY_URL });
  broker = new ScriptedBroker(() => ({ kind: 'approve-task', by: 'terminal' }));
  guestExecs = [];
  guestExec = async () => execResult({ stdout: 'ok' });
  const sandbox = {
    info: { accel: 'tcg', share: '9p', image: 'base', imageHash: 'h', bootMs: 1, startedAt: '' },
    session: new MemoryGuestSession(),
    exec: async (command: string, opts: ExecOptions = {}) => {
      guestExecs.push({ command, env: opts.env });
      return guestExec(command);
    },
  } as unknown as Sandbox;
  const config = defaultConfig();
  runner = createTaskRunner({
    config,
    sandbox,
    workspace: dir,
    timeline,
    proxyUrl: PROXY_URL,
    env: { ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: api.baseURL },
    scopes,
  });
  controller = new Controller({
    workspace: dir,
    stateDir: dir,
    sandbox,
    policy: createPolicyEngine(config),
    approvals: broker,
    timeline,
    approvalTimeoutMs: 60_000,
    vmSpec: { driver: 'qemu', cpus: 1, memoryMiB: 512 },
    tasks: runner,
    scopes,
  });
  runner.attach(controller);
});

afterEach(async () => {
  await runner.dispose();
  await proxy.close();
  timeline.close();
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The Proxy-Authorization header a client builds from a proxy URL with credentials. */
function proxyAuthFrom(env: Record<string, string> | undefined): string | undefined {
  const url = env?.HTTP_PROXY ? new URL(env.HTTP_PROXY) : undefined;
  if (!url?.username) return undefined;
  const user = decodeURIComponent(url.username);
  const pass = decodeURIComponent(url.password);
  return `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
}

function expectNothingLeft(): void {
  expect(scopes.size).toBe(0);
  expect(proxy.tasks.live).toBe(0);
}

describe('TaskScope', () => {
  it('a task’s commands carry its own proxy credentials, and its approvals and credentials end with it', async () => {
    let during: { scope: boolean; attributed: string | null } | undefined;
    guestExec = async () => {
      const last = guestExecs.at(-1);
      during = { scope: scopes.size === 1, attributed: proxy.tasks.attribute(proxyAuthFrom(last?.env)) };
      return execResult({ stdout: 'ok' });
    };
    api.enqueue(
      reply([toolUse('shell', { command: 'touch built' })]),
      reply([toolUse('shell', { command: 'touch built' })]),
      reply([toolUse('task_complete', { summary: 'done' })]),
    );
    const { id } = await runner.start({ prompt: 'go' }, local);
    expect((await runner.wait(id))?.outcome).toBe('completed');

    // Asked once, approved for the task: the second run went straight through.
    expect(broker.asked.map((a) => a.command)).toEqual(['touch built']);
    expect(guestExecs.map((e) => e.command)).toEqual(['touch built', 'touch built']);
    expect(during).toEqual({ scope: true, attributed: id });
    for (const v of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy']) {
      expect(guestExecs[0]?.env?.[v]).toMatch(/^http:\/\/task-[^:]+:[^@]+@127\.0\.0\.1:3128$/);
    }

    expectNothingLeft();
    // The ended task's credentials now prove nothing: its traffic would be no task's.
    expect(proxy.tasks.attribute(proxyAuthFrom(guestExecs[0]?.env))).toBeNull();
    // And its command approval is gone: the same command for the same id is asked again.
    const again = await controller.exec(
      { command: 'touch built', taskId: id },
      { id: 'x', context: 'agent' },
    );
    expect(again.result?.exitCode).toBe(0);
    expect(broker.asked).toHaveLength(2);
    // A command of no task gets no credentials at all (the guest's sandbox-level proxy).
    expect(guestExecs.at(-1)?.env ?? {}).toEqual({});
    expectNothingLeft();
  });

  it('is disposed when the task fails, is cancelled, or its loop crashes', async () => {
    // Fails: the API refuses the request.
    api.enqueue(apiError(400, 'invalid_request_error', 'bad request'));
    const failed = await runner.start({ prompt: 'fail' }, local);
    await runner.wait(failed.id);
    expect(timeline.getTask(failed.id)?.status).toBe('failed');
    expectNothingLeft();

    // Cancelled while the model call hangs.
    api.enqueue({ kind: 'hang' });
    const cancelled = await runner.start({ prompt: 'hang' }, local);
    expect(scopes.get(cancelled.id)).toBeDefined();
    while (api.requests.length < 2) await new Promise((r) => setImmediate(r));
    runner.cancel(cancelled.id, local);
    await runner.wait(cancelled.id);
    expectNothingLeft();

    // The loop crashes: the guest fails in a way the loop does not turn into a tool result.
    guestExec = async () => {
      throw new Error('the guest went away');
    };
    api.enqueue(reply([toolUse('shell', { command: 'ls' })]));
    const crashed = await runner.start({ prompt: 'crash' }, local);
    await runner.wait(crashed.id);
    expect(timeline.getTask(crashed.id)?.status).toBe('failed');
    expectNothingLeft();
  });

  it('keeps concurrent tasks apart: each command gets its own task’s credentials', async () => {
    const seen = new Map<string, string | null>();
    let release: () => void = () => {};
    const bothRunning = new Promise<void>((r) => {
      release = r;
    });
    guestExec = async (command) => {
      const env = guestExecs.find((e) => e.command === command)?.env;
      seen.set(command, proxy.tasks.attribute(proxyAuthFrom(env)));
      if (seen.size === 2) release();
      await bothRunning;
      return execResult({ stdout: 'ok' });
    };
    api.enqueue(
      reply([toolUse('shell', { command: 'ls a' })]),
      reply([toolUse('shell', { command: 'ls b' })]),
      reply([toolUse('task_complete', { summary: 'one' })]),
      reply([toolUse('task_complete', { summary: 'two' })]),
    );
    const a = await runner.start({ prompt: 'a' }, local);
    const b = await runner.start({ prompt: 'b' }, local);
    await Promise.all([runner.wait(a.id), runner.wait(b.id)]);
    // Which task got which scripted command depends on who asked first; each saw its own id.
    const ids = [...seen.values()].sort();
    expect(ids).toEqual([a.id, b.id].sort());
    for (const e of guestExecs) expect(proxy.tasks.attribute(proxyAuthFrom(e.env))).toBeNull();
    expectNothingLeft();
  });
});

describe('TaskScopes', () => {
  it('a scope that is closed twice, or reopened for the same id, leaves one live credential at most', () => {
    const s1 = scopes.open('t-1');
    s1.egressHosts.add('example.com');
    s1.commandApprovals.add('make');
    const s2 = scopes.open('t-1');
    expect(s1.disposed).toBe(true);
    expect(s1.egressHosts.size + s1.commandApprovals.size).toBe(0);
    expect(proxy.tasks.live).toBe(1);
    expect(s2.credential?.password).not.toBe(s1.credential?.password);
    scopes.close('t-1');
    scopes.close('t-1');
    expect(s2.proxyEnv()).toEqual({});
    expectNothingLeft();
  });
});
