import type http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Origin } from '../../src/host/api/controller.js';
import type { ApprovalRequest, Verdict } from '../../src/host/approvals/types.js';
import { defaultConfig } from '../../src/host/config/index.js';
import { type EgressEvent, EgressProxy } from '../../src/host/egress/index.js';
import { hostPaths, sandboxStateDir } from '../../src/host/paths.js';
import { createPolicyEngine } from '../../src/host/policy/index.js';
import { Controller } from '../../src/host/sandbox/controller.js';
import type { Sandbox } from '../../src/host/sandbox/sandbox.js';
import { TaskScopes } from '../../src/host/sandbox/task-scope.js';
import { Timeline } from '../../src/host/timeline/index.js';
import { closeServer, ScriptedBroker, type SeenRequest, startOrigin } from '../helpers/egress.js';
import { makeTestEnv, startGuestBehindProxy, type TestSandboxEnv } from '../helpers/sandbox.js';

// Per-task attribution from a real QEMU guest (TCG): commands of a task run through the
// Controller, which gives them the task's proxy credentials; curl in the guest sends them, and
// the proxy decides each request for that task. `.test` names map to 127.0.0.1 and the dialer
// sends port 80 to the local origin, so nothing leaves the host.

let t: TestSandboxEnv;
let sandbox: Sandbox;
let proxy: EgressProxy;
let timeline: Timeline;
let scopes: TaskScopes;
let controller: Controller;
let origin: { server: http.Server; port: number; seen: SeenRequest[] };
const events: EgressEvent[] = [];
const asked: (string | undefined)[] = [];
let approveFor = '';
const local: Origin = { id: 'test', context: 'local' };

beforeAll(async () => {
  t = makeTestEnv('egress-attr-guest');
  origin = await startOrigin();
  const paths = hostPaths(t.env);
  const stateDir = sandboxStateDir(paths, t.workspace);
  timeline = Timeline.open(join(t.root, 'timeline.db'));
  // Approves for the task when the chosen task asks; refuses everyone else.
  const egressBroker = new ScriptedBroker((req: ApprovalRequest): Verdict => {
    asked.push(req.taskId);
    return req.taskId === approveFor
      ? { kind: 'approve-task', by: 'test' }
      : { kind: 'deny', by: 'test', message: 'not for this task' };
  });
  proxy = new EgressProxy({
    rules: { ask: true },
    testResolve: { 'ask.test': '127.0.0.1' },
    allowTestResolve: true,
    broker: egressBroker,
    timeline,
    onEvent: (e) => events.push(e),
    dial: ({ port }) => net.connect(port === 80 || port === 443 ? origin.port : port, '127.0.0.1'),
  });
  const { port: proxyPort } = await proxy.start();
  sandbox = await startGuestBehindProxy(t, proxyPort);
  scopes = new TaskScopes({ attribution: proxy.tasks, proxyUrl: 'http://127.0.0.1:3128' });
  const config = defaultConfig();
  controller = new Controller({
    workspace: t.workspace,
    stateDir,
    sandbox,
    policy: createPolicyEngine(config),
    approvals: new ScriptedBroker(() => ({ kind: 'approve-once', by: 'test' })),
    timeline,
    approvalTimeoutMs: 60_000,
    vmSpec: { driver: 'qemu', cpus: 1, memoryMiB: 768 },
    scopes,
  });
});

afterAll(async () => {
  await sandbox?.stop();
  await proxy?.close();
  timeline?.close();
  if (origin) await closeServer(origin.server);
  t?.cleanup();
});

/** curl in the guest as a command of `taskId` (or of no task); returns the HTTP status. */
async function curlAs(taskId: string | undefined, url: string): Promise<string> {
  const out = await controller.exec(
    { command: `curl -sS -m 20 -o /dev/null -w '%{http_code}' ${url}`, taskId, timeoutMs: 60_000 },
    local,
  );
  return out.result?.stdout.trim() ?? `not run: ${out.deniedReason}`;
}

describe('egress from a real guest, attributed per task', () => {
  it('an approval for task A serves A only, and ends with A', async () => {
    const a = timeline.createTask({ title: 'a', context: 'agent', origin: 'test' }).id;
    const b = timeline.createTask({ title: 'b', context: 'agent', origin: 'test' }).id;
    scopes.open(a);
    scopes.open(b);
    approveFor = a;
    // Both tasks run at once; each command gets its own task's credentials.
    const [first, other] = await Promise.all([
      curlAs(a, 'http://ask.test/a-first'),
      curlAs(b, 'http://ask.test/b-first'),
    ]);
    expect([first, other]).toEqual(['200', '403']);
    expect(await curlAs(a, 'http://ask.test/a-again')).toBe('200'); // A's grant: not asked again
    expect(await curlAs(undefined, 'http://ask.test/no-task')).toBe('403'); // asked as no task's
    expect(new Set(asked)).toEqual(new Set([a, b, undefined]));
    expect(asked).toHaveLength(3);

    scopes.close(a);
    expect(await curlAs(a, 'http://ask.test/a-after')).toBe('403'); // A has ended: no task, refused
    expect(asked.at(-1)).toBeUndefined();

    expect(origin.seen.map((s) => s.url).sort()).toEqual(['/a-again', '/a-first']);
    const byUrl = (u: string) => events.find((e) => e.url === `http://ask.test${u}`);
    expect(byUrl('/a-first')).toMatchObject({ taskId: a, decision: 'allow', stage: 'approval' });
    expect(byUrl('/a-again')).toMatchObject({ taskId: a, decision: 'allow', stage: 'task' });
    expect(byUrl('/b-first')).toMatchObject({ taskId: b, decision: 'deny' });
    expect(byUrl('/no-task')).toMatchObject({ taskId: null, decision: 'deny' });
    expect(byUrl('/a-after')).toMatchObject({ taskId: null, decision: 'deny' });
    // The timeline files each request under its own task.
    expect(timeline.query({ taskId: a, types: ['egress.request'] })).toHaveLength(2);
    expect(timeline.query({ taskId: b, types: ['egress.request'] })).toHaveLength(1);
    // No credentials travelled past the proxy.
    for (const s of origin.seen) expect(s.headers['proxy-authorization']).toBeUndefined();
    scopes.disposeAll();
    expect(proxy.tasks.live).toBe(0);
  });
});
