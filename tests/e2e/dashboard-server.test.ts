import { existsSync, mkdirSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/host/api/client.js';
import type { ExecOutcome } from '../../src/host/api/controller.js';
import { defaultConfig } from '../../src/host/config/index.js';
import { LocalControlClient } from '../../src/host/control/local-client.js';
import { CSP, SECURITY_HEADERS } from '../../src/host/dashboard/index.js';
import { checkPolicy } from '../../src/host/policy/index.js';
import type { RunningController } from '../../src/host/sandbox/serve.js';
import { AnthropicApiStandIn, reply, text, toolUse } from '../helpers/anthropic-api.js';
import { assertBuilt, cliAsync } from '../helpers/cli.js';
import { call, type DashboardLogin, EventStreamReader, loginWith, result } from '../helpers/dashboard.js';
import { makeTestEnv, startTestSandbox, type TestSandboxEnv } from '../helpers/sandbox.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The dashboard's server against a real controller and guest, with Node's fetch as the browser:
 * login links from `cowork-vm dashboard`, every refusal a forged or foreign request should get,
 * approvals answered from the dashboard and from the terminal, the event stream, revocation and
 * the policy check. One guest for the whole file.
 */

type Pending = { id: string; command?: string };

let t: TestSandboxEnv;
let running: RunningController;
let anthropic: AnthropicApiStandIn;
let base: string;

/**
 * A fresh login URL from the built CLI, the owner's way in (a process per call: used sparingly).
 * The controller runs in this process, so the CLI is never waited for synchronously: that would
 * stop the event loop the controller needs to answer it.
 */
async function cliLoginUrl(role?: 'viewer' | 'operator' | 'admin'): Promise<string> {
  const r = await cliAsync(
    ['dashboard', '--print-url', '--workspace', t.workspace, ...(role ? ['--role', role] : [])],
    t.env,
  );
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

/** The same request `cowork-vm dashboard` makes, on the same local socket, from this process. */
async function loginUrl(role?: 'viewer' | 'operator' | 'admin'): Promise<string> {
  const raw = await LocalControlClient.connect(running.socketPath, t.workspace);
  const client = new ApiClient<'local'>(raw);
  try {
    return (await client.call('dashboard.login', role ? { role } : {})).url;
  } finally {
    client.close();
  }
}

/** An exec that asks (the agent context, a write) and waits on the controller for its answer. */
function askedExec(command: string): Promise<ExecOutcome> {
  return running.controller.exec({ command }, { id: 'cli', context: 'agent' });
}

function pendingFor(command: string): Promise<Pending> {
  return waitFor(
    () => running.controller.approvalsList().find((a) => a.command === command),
    `a pending approval for ${command}`,
    { timeoutMs: 60_000 },
  );
}

/** A raw request, for what fetch will not send (another Host). */
function rawGet(
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: Headers }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, headers }, (res) => {
      res.resume();
      const h = new Headers();
      for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h.set(k, v);
      resolve({ status: res.statusCode ?? 0, headers: h });
    });
    req.on('error', reject);
    req.end();
  });
}

function expectSecurityHeaders(h: Headers, what: string): void {
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) expect(h.get(k), `${k} on ${what}`).toBe(v);
}

beforeAll(async () => {
  assertBuilt();
  // The Messages API stand-in (no internet here), found by the controller's SDK client.
  anthropic = await AnthropicApiStandIn.start({ apiKey: 'sk-ant-dash-test' });
  t = makeTestEnv('dash');
  t.env.ANTHROPIC_BASE_URL = anthropic.baseURL;
  t.env.ANTHROPIC_API_KEY = 'sk-ant-dash-test';
  running = await startTestSandbox(t);
  const st = await running.controller.status();
  base = st.dashboard!.url;
});

afterAll(async () => {
  await running?.shutdown('test over');
  await anthropic?.close();
  t?.cleanup();
});

describe('login', () => {
  it('status names the dashboard on 127.0.0.1 without any token', async () => {
    const st = await running.controller.status();
    expect(st.dashboard?.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const r = await cliAsync(['status', '--json', '--workspace', t.workspace], t.env);
    expect(JSON.parse(r.stdout).dashboard).toEqual({ url: base });
  });

  it('a login link sets an HttpOnly SameSite=Strict session cookie once; used again it is refused', async () => {
    const url = await cliLoginUrl();
    expect(url).toMatch(new RegExp(`^${base}login\\?token=[A-Za-z0-9_-]{43}$`));
    const first = await fetch(url, { redirect: 'manual' });
    expect(first.status).toBe(303);
    expect(first.headers.get('location')).toBe('/');
    expect(first.headers.get('set-cookie')).toMatch(
      /^cvm_session_\d+=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/$/,
    );
    expectSecurityHeaders(first.headers, 'the login redirect');
    const again = await fetch(url, { redirect: 'manual' });
    expect(again.status).toBe(401);
    expect(again.headers.get('set-cookie')).toBeNull();
    expect(await again.text()).toContain('cowork-vm dashboard');
    const guessed = await fetch(`${base}login?token=${'A'.repeat(43)}`, { redirect: 'manual' });
    expect(guessed.status).toBe(401);
  });

  it('the owner is admin by default; --role asks for less; --json gives the expiry', async () => {
    const admin = await loginWith(await loginUrl());
    expect(admin).toMatchObject({ role: 'admin' });
    expect(admin.methods).toEqual(expect.arrayContaining(['exec', 'devices.revoke', 'policy.check']));
    const viewer = await loginWith(await cliLoginUrl('viewer'));
    expect(viewer.role).toBe('viewer');
    expect(viewer.methods).not.toContain('approvals.answer');
    expect(viewer.methods).toContain('approvals.list');
    const j = await cliAsync(['dashboard', '--json', '--workspace', t.workspace], t.env);
    const { url, expiresAt } = JSON.parse(j.stdout);
    expect(url).toContain('/login?token=');
    expect(expiresAt).toBeGreaterThan(Date.now());
  });

  it('with nothing running it fails like exec: the same line, the same exit code', async () => {
    const idle = join(t.root, 'idle-ws');
    mkdirSync(idle);
    const d = await cliAsync(['dashboard', '--print-url', '--workspace', idle], t.env);
    const e = await cliAsync(['exec', '--workspace', idle, '--', 'true'], t.env);
    expect(d.code).toBe(75);
    expect(d.code).toBe(e.code);
    expect(d.stderr).toMatch(/no sandbox is running for .*`cowork-vm start --detach`/);
    expect(d.stderr).toBe(e.stderr);
    expect(d.stdout).toBe('');
  });

  it('--help has examples', async () => {
    const r = await cliAsync(['dashboard', '--help'], t.env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Example');
  });
});

describe('refusals', () => {
  let admin: DashboardLogin;
  beforeAll(async () => {
    admin = await loginWith(await loginUrl());
  });

  it('no cookie: pages, the API and the event stream answer 401 with the hint', async () => {
    for (const path of ['/', '/app.css', '/app.js']) {
      const r = await fetch(`${admin.origin}${path}`);
      expect(r.status, path).toBe(401);
      expect(await r.text(), path).toContain('cowork-vm dashboard');
    }
    for (const path of ['/api/session', '/api/events'])
      expect((await fetch(`${admin.origin}${path}`)).status).toBe(401);
    const r = await call({ ...admin, cookie: `${admin.cookie.split('=')[0]}=forged` }, 'status');
    expect(r.status).toBe(401);
  });

  it('a write without Origin, or from another origin, is refused with 403 and does not run', async () => {
    const before = running.controller.approvalsList().length;
    for (const origin of [
      undefined,
      'http://evil.example',
      'null',
      `http://localhost:${new URL(base).port}`,
    ]) {
      const r = await call(admin, 'exec', { command: 'touch /workspace/forged.txt' }, { origin });
      expect(r.status, String(origin)).toBe(403);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('denied');
    }
    expect(existsSync(join(t.workspace, 'forged.txt'))).toBe(false);
    expect(running.controller.approvalsList().length).toBe(before);
  });

  it('a write without the CSRF header, or with another session’s, is refused with 403', async () => {
    const other = await loginWith(await loginUrl());
    for (const csrf of [undefined, other.csrf, '']) {
      const r = await call(admin, 'status', {}, { 'x-cowork-csrf': csrf });
      expect(r.status).toBe(403);
    }
    expect((await call(admin, 'status')).status).toBe(200);
  });

  it('another Host name (DNS rebinding) is refused on every path', async () => {
    const port = new URL(base).port;
    for (const host of [
      `evil.example:${port}`,
      `127.0.0.1:1`,
      `localhost.evil:${port}`,
      `LOCALHOST:${port}.`,
    ]) {
      for (const path of ['/', '/api/session', '/login?token=x']) {
        const r = await rawGet(path, { host, cookie: admin.cookie });
        expect(r.status, `${host} ${path}`).toBe(421);
        expectSecurityHeaders(r.headers, 'a wrong Host');
      }
    }
    // No Host at all (HTTP/1.0; Node itself refuses an HTTP/1.1 request without one).
    const bare = await new Promise<string>((resolve, reject) => {
      const sock = connect(Number(port), '127.0.0.1', () =>
        sock.end(`GET /api/session HTTP/1.0\r\nCookie: ${admin.cookie}\r\n\r\n`),
      );
      let text = '';
      sock.on('data', (d) => (text += d));
      sock.on('end', () => resolve(text));
      sock.on('error', reject);
    });
    expect(bare).toMatch(/^HTTP\/1\.1 421 /);
    expect(bare).toContain(`Content-Security-Policy: ${CSP}`);
    // localhost is this server too.
    expect((await rawGet('/api/session', { host: `localhost:${port}`, cookie: admin.cookie })).status).toBe(
      200,
    );
  });

  it('GET (or PUT) on /api/call is 405, and changes nothing', async () => {
    const r = await fetch(`${admin.origin}/api/call/stop`, { headers: { cookie: admin.cookie } });
    expect(r.status).toBe(405);
    expect(r.headers.get('allow')).toBe('POST');
    const put = await fetch(`${admin.origin}/api/call/status`, {
      method: 'PUT',
      headers: { cookie: admin.cookie },
    });
    expect(put.status).toBe(405);
    expect(
      (
        await fetch(`${admin.origin}/api/session`, {
          method: 'POST',
          headers: { cookie: admin.cookie, origin: admin.origin },
        })
      ).status,
    ).toBe(405);
    expect((await running.controller.status()).state).toBe('running');
  });

  it('a viewer cannot answer an approval: 403, and it stays pending', async () => {
    const viewer = await loginWith(await loginUrl('viewer'));
    const command = 'touch /workspace/viewer-tried.txt';
    const outcome = askedExec(command);
    const pending = await pendingFor(command);
    const r = await call(viewer, 'approvals.answer', { id: pending.id, kind: 'approve-once' });
    expect(r.status).toBe(403);
    expect(((await r.json()) as { error: { message: string } }).error.message).toMatch(
      /needs role 'operator'/,
    );
    expect(running.controller.approvalsList().map((a) => a.id)).toContain(pending.id);
    running.controller.approvalsAnswer(pending.id, { kind: 'deny' }, { id: 'terminal', context: 'local' });
    expect((await outcome).result).toBeUndefined();
    expect(existsSync(join(t.workspace, 'viewer-tried.txt'))).toBe(false);
  });
});

describe('approvals and the event stream', () => {
  it('an operator answers from the dashboard: the asked command runs in the guest', async () => {
    const op = await loginWith(await loginUrl('operator'));
    const stream = await EventStreamReader.open(op);
    try {
      const command = 'touch /workspace/approved-by-dashboard.txt';
      const outcome = askedExec(command);
      const list = await stream.next<Pending[]>(
        'approvals',
        (l) => l.some((a) => a.command === command),
        'the approval in the stream',
      );
      const id = list.find((a) => a.command === command)!.id;
      const answer = await result(call(op, 'approvals.answer', { id, kind: 'approve-once' }));
      expect(answer).toEqual({ answered: id, kind: 'approve-once' });
      const done = await outcome;
      expect(done.result?.exitCode).toBe(0);
      expect(existsSync(join(t.workspace, 'approved-by-dashboard.txt'))).toBe(true);
      const answered = await stream.next<{ type: string; data: { id: string; by: string } }>(
        'timeline',
        (e) => e.type === 'approval.answered' && e.data.id === id,
        'approval.answered in the stream',
      );
      expect(answered.data.by).toBe(`dashboard:${op.deviceId}`);
      // The first answer won; a second one (another tab) hears who answered.
      const late = await call(op, 'approvals.answer', { id, kind: 'deny' });
      expect(late.status).toBe(409);
      expect(await late.text()).toContain(`by dashboard:${op.deviceId}`);
    } finally {
      stream.close();
    }
  });

  it('a tab learns the timeline entries, the pending list, and an answer given at the terminal', async () => {
    const viewer = await loginWith(await loginUrl('viewer'));
    const stream = await EventStreamReader.open(viewer);
    try {
      expect(stream.response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
      expectSecurityHeaders(stream.response.headers, 'the event stream');
      await stream.next<Pending[]>('approvals', () => true, 'the first pending list');
      const command = 'touch /workspace/answered-at-terminal.txt';
      const outcome = askedExec(command);
      await stream.next<{ type: string; data: { command?: string } }>(
        'timeline',
        (e) => e.type === 'command.requested' && e.data.command === command,
        'command.requested',
      );
      const asked = await stream.next<{ type: string; data: { id: string; command?: string } }>(
        'timeline',
        (e) => e.type === 'approval.asked' && e.data.command === command,
        'approval.asked',
      );
      await stream.next<Pending[]>(
        'approvals',
        (l) => l.some((a) => a.id === asked.data.id),
        'the list with it',
      );
      running.controller.approvalsAnswer(
        asked.data.id,
        { kind: 'deny', message: 'no' },
        { id: 'terminal', context: 'local' },
      );
      const answered = await stream.next<{ type: string; data: { id: string; by: string; verdict: string } }>(
        'timeline',
        (e) => e.type === 'approval.answered' && e.data.id === asked.data.id,
        'approval.answered',
      );
      expect(answered.data).toMatchObject({ by: 'terminal', verdict: 'deny' });
      await waitFor(
        () =>
          !(stream.events.filter((e) => e.event === 'approvals').at(-1)!.data as Pending[]).some(
            (a) => a.id === asked.data.id,
          ),
        'a pending list without the answered approval',
      );
      expect((await outcome).deniedReason).toContain('denied by terminal');
    } finally {
      stream.close();
    }
  });

  it("an operator starts a task; the stream carries the model's text and the task's end", async () => {
    const op = await loginWith(await loginUrl('operator'));
    const stream = await EventStreamReader.open(op);
    try {
      anthropic.enqueue(
        reply([text('Looking at the workspace.')]),
        reply([toolUse('task_complete', { summary: 'looked' })]),
      );
      const { id } = await result<{ id: string }>(call(op, 'tasks.start', { prompt: 'look around' }));
      await stream.next<{ taskId: string; type: string; text?: string }>(
        'task',
        (e) => e.taskId === id && e.type === 'text' && (e.text ?? '').includes('Looking'),
        "the model's text",
      );
      await stream.next<{ taskId: string; type: string }>(
        'task',
        (e) => e.taskId === id && e.type === 'finished',
        'the task finished',
      );
      const task = await result<{ origin: string; context: string }>(call(op, 'tasks.get', { id }));
      expect(task).toMatchObject({ origin: `dashboard:${op.deviceId}`, context: 'gateway' });
    } finally {
      stream.close();
    }
  });

  it('at most 4 streams per session', async () => {
    const viewer = await loginWith(await loginUrl('viewer'));
    const open = await Promise.all([1, 2, 3, 4].map(() => EventStreamReader.open(viewer)));
    try {
      expect(open.map((s) => s.response.status)).toEqual([200, 200, 200, 200]);
      const fifth = await EventStreamReader.open(viewer);
      expect(fifth.response.status).toBe(429);
    } finally {
      for (const s of open) s.close();
    }
  });

  it('revoking a device ends its sessions and its stream at once, and its next login link is refused', async () => {
    const admin = await loginWith(await loginUrl());
    const viewer = await loginWith(await loginUrl('viewer'));
    const unused = await loginUrl('viewer');
    const stream = await EventStreamReader.open(viewer);
    await stream.next('approvals', () => true, 'the stream running');
    const devices = await result<{ id: string; name: string }[]>(call(admin, 'devices.list'));
    expect(devices.find((d) => d.id === viewer.deviceId)?.name).toBe('dashboard (viewer)');
    await result(call(admin, 'devices.revoke', { id: viewer.deviceId }));
    await waitFor(() => stream.ended, 'the revoked session’s stream to end');
    expect((await fetch(`${viewer.origin}/api/session`, { headers: { cookie: viewer.cookie } })).status).toBe(
      401,
    );
    expect((await fetch(unused, { redirect: 'manual' })).status).toBe(401);
    // The owner's next viewer login gets a fresh device.
    const again = await loginWith(await loginUrl('viewer'));
    expect(again.deviceId).not.toBe(viewer.deviceId);
  });
});

describe('policy.check', () => {
  it("gives the engine's verdict and reasons, in the session's gateway context, and asks nobody", async () => {
    const viewer = await loginWith(await loginUrl('viewer'));
    const stream = await EventStreamReader.open(viewer);
    try {
      const ids = () => running.controller.approvalsList().length;
      const before = ids();
      const lastId = (running.controller.timelineQuery({ limit: 1000 }) as { id: number }[]).at(-1)!.id;
      for (const command of ['touch /workspace/checked.txt', 'echo ok && sudo id', 'ls /workspace']) {
        const got = await result<{ verdict: string; reasons: string[]; context: string; layer: string }>(
          call(viewer, 'policy.check', { command }),
        );
        const engine = checkPolicy({
          request: command,
          context: 'gateway',
          config: defaultConfig(),
          workspace: t.workspace,
        });
        expect(got, command).toMatchObject({
          verdict: engine.effect,
          reasons: engine.reasons,
          layer: engine.layer,
          context: 'gateway',
        });
      }
      const sudo = await result<{ verdict: string; reasons: string[] }>(
        call(viewer, 'policy.check', { command: 'sudo id' }),
      );
      expect(sudo.verdict).toBe('deny');
      expect(sudo.reasons.join(' ')).toMatch(/sudo/);
      expect(ids()).toBe(before);
      const since = running.controller.timelineQuery({ afterId: lastId }) as { type: string }[];
      expect(since.map((e) => e.type)).not.toContain('approval.asked');
      expect(since.map((e) => e.type)).not.toContain('command.requested');
      expect(existsSync(join(t.workspace, 'checked.txt'))).toBe(false);
      const looser = await call(viewer, 'policy.check', { command: 'ls', context: 'local' });
      expect(looser.status).toBe(403);
      expect(await looser.text()).toMatch(/cannot ask for 'local'/);
    } finally {
      stream.close();
    }
  });
});

describe('headers', () => {
  it('every kind of response carries the CSP and the security headers', async () => {
    const admin = await loginWith(await loginUrl());
    const h = { cookie: admin.cookie };
    const responses: [string, Response][] = [
      ['index', await fetch(`${base}`, { headers: h })],
      ['css', await fetch(`${base}app.css`, { headers: h })],
      ['session json', await fetch(`${base}api/session`, { headers: h })],
      ['call result', await call(admin, 'status')],
      ['403', await call(admin, 'status', {}, { origin: 'http://evil.example' })],
      ['401', await fetch(`${base}api/session`)],
      ['404', await fetch(`${base}nothing`, { headers: h })],
      ['404 api', await fetch(`${base}api/nothing`, { headers: h })],
      ['405', await fetch(`${base}api/call/status`, { headers: h })],
      ['login 401', await fetch(`${base}login?token=nope`, { redirect: 'manual' })],
    ];
    for (const [what, r] of responses) {
      expectSecurityHeaders(r.headers, what);
      expect(r.headers.get('content-security-policy')).toBe(CSP);
    }
    expect(responses[0]![1].status).toBe(200);
    expect(responses[0]![1].headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(responses[1]![1].headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect(responses[3]![1].status).toBe(200);
    expect(((await responses[3]![1].json()) as { result: { state: string } }).result.state).toBe('running');
  });
});
