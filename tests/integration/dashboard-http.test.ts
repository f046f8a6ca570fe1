import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControllerApi, Origin } from '../../src/host/api/controller.js';
import { ControlStore } from '../../src/host/control/index.js';
import {
  DashboardServer,
  LOGIN_FAILURES,
  LOGIN_TOKEN_TTL_MS,
  SECURITY_HEADERS,
  SESSION_IDLE_MS,
} from '../../src/host/dashboard/index.js';
import { call, EventStreamReader, loginWith } from '../helpers/dashboard.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The dashboard server on a real loopback socket and a real device store, with a clock the test
 * moves (expiry cannot wait five minutes) and its own package root (so the built script is a
 * known file). The controller behind it is a seam that records what reaches it; the same server
 * against a real controller and guest is tests/e2e/dashboard-server.test.ts (and the pages in a
 * browser, tests/e2e/dashboard.test.ts).
 */

const clock = { t: 5_000_000, now: () => clock.t };
const reached: { method: string; origin?: Origin }[] = [];
const timeline = new Set<(e: unknown) => void>();
/** What the seam's timeline.query holds. */
const stored = [1, 2, 3, 4].map((id) => ({ id, ts: id, taskId: null, type: 'exec.started', data: {} }));

const api: ControllerApi = {
  status: async () => {
    reached.push({ method: 'status' });
    return { state: 'running' } as never;
  },
  exec: async (_r, origin) => {
    reached.push({ method: 'exec', origin });
    return { decision: { effect: 'allow', reasons: [], layer: 'context' } };
  },
  approvalsList: () => [],
  approvalsAnswer: () => {},
  tasksList: () => [],
  tasksGet: () => ({}) as never,
  tasksStart: async () => ({ id: 't' }),
  tasksCancel: () => {},
  timelineQuery: (q) => stored.filter((e) => e.id > (q.afterId ?? 0)).slice(0, q.limit ?? 100),
  timelineSubscribe: (l) => {
    timeline.add(l);
    return () => timeline.delete(l);
  },
  stop: async () => {},
};

let dir: string;
let root: string;
let store: ControlStore;
let server: DashboardServer;
let base: string;
const owner: Origin = { id: 'cli', context: 'local' };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cvm-dash-http-'));
  root = join(dir, 'pkg');
  mkdirSync(join(root, 'src/dashboard/static'), { recursive: true });
  mkdirSync(join(root, 'dist/dashboard'), { recursive: true });
  writeFileSync(join(root, 'src/dashboard/static/index.html'), '<!doctype html><title>t</title>');
  writeFileSync(join(root, 'dist/dashboard/app.js'), 'console.log("app");\n');
  // app.css is missing on purpose.
  store = new ControlStore({ file: join(dir, 'devices.sqlite'), clock });
  server = new DashboardServer({
    api,
    devices: () => store,
    clock,
    packageRoot: root,
    heartbeatMs: 50,
    sweepMs: 20,
    requestsPerMinute: 50,
  });
  base = (await server.start()).url;
});

afterAll(async () => {
  await server.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('tokens over HTTP', () => {
  it('an expired login link is refused', async () => {
    const { url, expiresAt } = server.login({}, owner);
    expect(expiresAt).toBe(clock.t + LOGIN_TOKEN_TTL_MS);
    clock.t += LOGIN_TOKEN_TTL_MS;
    const r = await fetch(url, { redirect: 'manual' });
    expect(r.status).toBe(401);
    expect(await r.text()).toContain('Run `cowork-vm dashboard`');
  });

  it('failed logins from one address are answered 429 past the limit; a valid link still works', async () => {
    clock.t += LOGIN_FAILURES.windowMs; // a fresh window, whatever failed before
    for (let i = 0; i < LOGIN_FAILURES.perWindow; i++)
      expect((await fetch(`${base}login?token=wrong${i}`)).status).toBe(401);
    const limited = await fetch(`${base}login?token=wrong`);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) expect(limited.headers.get(k)).toBe(v);
    const ok = await fetch(server.login({}, owner).url, { redirect: 'manual' });
    expect(ok.status).toBe(303);
    clock.t += LOGIN_FAILURES.windowMs;
    expect((await fetch(`${base}login?token=wrong`)).status).toBe(401);
  });

  it('a link issued to a device that is revoked before it is used is refused', async () => {
    const viewer = server.login({ role: 'viewer' }, owner);
    const device = store.listDevices().find((d) => d.name === 'dashboard (viewer)')!;
    // Another process (the CLI) revokes it: this store instance's event never fires for it.
    const other = new ControlStore({ file: store.file, clock });
    other.revokeDevice(device.id, 'cli');
    other.close();
    expect((await fetch(viewer.url, { redirect: 'manual' })).status).toBe(401);
  });
});

describe('who a login is for', () => {
  it('a paired device logs in as itself with its role, and cannot choose one', () => {
    const { code } = store.createPairingCode({ role: 'operator' });
    const { device } = store.redeemPairingCode({ code, identity: 'test', name: 'phone', channel: 'control' });
    const origin: Origin = { id: `device:${device.id}`, context: 'gateway' };
    expect(server.login({}, origin).url).toContain('/login?token=');
    expect(() => server.login({ role: 'admin' }, origin)).toThrow(/only the owner/);
    store.revokeDevice(device.id, 'test');
    expect(() => server.login({}, origin)).toThrow(/revoked/);
    expect(() => server.login({}, { id: 'telegram:42', context: 'gateway' })).toThrow(
      /not for 'telegram:42'/,
    );
  });

  it("a paired device's session has the device's role", async () => {
    const { code } = store.createPairingCode({ role: 'operator' });
    const { device } = store.redeemPairingCode({
      code,
      identity: 'test',
      name: 'tablet',
      channel: 'control',
    });
    const s = await loginWith(server.login({}, { id: `device:${device.id}`, context: 'gateway' }).url);
    expect(s).toMatchObject({ deviceId: device.id, role: 'operator' });
    expect(s.methods).toContain('approvals.answer');
    expect(s.methods).not.toContain('exec');
  });
});

describe('calls', () => {
  it('run with origin dashboard:<device> in the gateway context', async () => {
    const s = await loginWith(server.login({}, owner).url);
    const before = reached.length;
    const r = await call(s, 'exec', { command: 'id' });
    expect(r.status).toBe(200);
    expect(reached.slice(before)).toEqual([
      { method: 'exec', origin: { id: `dashboard:${s.deviceId}`, context: 'gateway' } },
    ]);
  });

  it('from a page on another port of 127.0.0.1 (same site, so the cookie goes along) are refused', async () => {
    const s = await loginWith(server.login({}, owner).url);
    const before = reached.length;
    const port = Number(new URL(base).port);
    for (const origin of [`http://127.0.0.1:${port + 1}`, `https://127.0.0.1:${port}`, 'http://127.0.0.1']) {
      // A simple (no-preflight) request, as a cross-site form or fetch would send it.
      const r = await call(s, 'exec', { command: 'id' }, { origin, 'content-type': 'text/plain' });
      expect(r.status, origin).toBe(403);
      const stream = await EventStreamReader.open(s, { origin });
      expect(stream.response.status, origin).toBe(403);
    }
    expect(reached.length).toBe(before);
  });

  it('refuse what is not a JSON object of params, before anything runs', async () => {
    const s = await loginWith(server.login({}, owner).url);
    const before = reached.length;
    const text = await call(s, 'status', {}, { 'content-type': 'text/plain' });
    expect(text.status).toBe(415);
    const bad = await fetch(`${s.origin}/api/call/status`, {
      method: 'POST',
      headers: {
        cookie: s.cookie,
        origin: s.origin,
        'x-cowork-csrf': s.csrf,
        'content-type': 'application/json',
      },
      body: '{not json',
    });
    expect(bad.status).toBe(400);
    expect((await call(s, 'status', [1, 2])).status).toBe(400);
    expect((await call(s, 'exec', { command: 'id', context: 'local' })).status).toBe(400);
    const big = await call(s, 'exec', { command: 'x', stdin: 'y'.repeat(3 * 1024 * 1024) });
    expect(big.status).toBe(413);
    expect(reached.length).toBe(before);
  });

  it('are rate limited per session (by the clock), not per browser', async () => {
    clock.t += 60_000;
    const s = await loginWith(server.login({}, owner).url);
    const other = await loginWith(server.login({}, owner).url);
    const codes: number[] = [];
    // loginWith's GET /api/session was the first of the 50.
    for (let i = 0; i < 49; i++) codes.push((await call(s, 'status')).status);
    expect(new Set(codes)).toEqual(new Set([200]));
    const over = await call(s, 'status');
    expect(over.status).toBe(429);
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await call(other, 'status')).status).toBe(200);
    clock.t += 60_000;
    expect((await call(s, 'status')).status).toBe(200);
  });

  it('offer no method the contract does not, and not the per-connection subscriptions', async () => {
    const s = await loginWith(server.login({}, owner).url);
    for (const m of ['nope', '__proto__', 'timeline.subscribe', 'constructor']) {
      const r = await call(s, m);
      expect(r.status, m).toBe(404);
    }
    expect(await (await call(s, 'timeline.subscribe')).text()).toContain('GET /api/events');
  });
});

describe('assets', () => {
  it('are the fixed files with their types; a missing one says how to build it', async () => {
    const s = await loginWith(server.login({}, owner).url);
    const h = { cookie: s.cookie };
    const js = await fetch(`${base}app.js`, { headers: h });
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(await js.text()).toBe('console.log("app");\n');
    const css = await fetch(`${base}app.css`, { headers: h });
    expect(css.status).toBe(503);
    expect(await css.text()).toContain('npm run build');
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) expect(css.headers.get(k)).toBe(v);
    for (const path of [
      '/index.html',
      '/src/dashboard/static/index.html',
      '/..%2fpackage.json',
      '/app.js/',
    ]) {
      expect((await fetch(`${base.slice(0, -1)}${path}`, { headers: h })).status, path).toBe(404);
    }
    expect((await fetch(base, { method: 'HEAD', headers: h })).status).toBe(200);
    expect((await fetch(base, { method: 'DELETE', headers: h })).status).toBe(405);
  });
});

describe('event stream', () => {
  it('a client reconnecting with Last-Event-ID first gets the entries it missed, then live ones', async () => {
    const s = await loginWith(server.login({}, owner).url);
    const stream = await EventStreamReader.open(s, { 'last-event-id': '2' });
    try {
      for (const l of timeline) l({ id: 5, ts: 5, taskId: null, type: 'exec.finished', data: {} });
      await stream.next<{ id: number }>('timeline', (e) => e.id === 5, 'the live entry');
      const ids = stream.events
        .filter((e) => e.event === 'timeline')
        .map((e) => (e.data as { id: number }).id);
      expect(ids).toEqual([3, 4, 5]);
      expect(stream.ids).toEqual(['3', '4', '5']);
    } finally {
      stream.close();
    }
    const fresh = await EventStreamReader.open(s, { 'last-event-id': 'garbage' });
    try {
      await fresh.next('approvals', () => true, 'the first pending list');
      expect(fresh.events.filter((e) => e.event === 'timeline')).toEqual([]);
    } finally {
      fresh.close();
    }
  });
});

describe('connections', () => {
  it('beyond the cap are dropped without an answer, and the server goes on serving', async () => {
    const small = new DashboardServer({
      api,
      devices: () => store,
      clock,
      packageRoot: root,
      maxConnections: 2,
    });
    const url = (await small.start()).url;
    try {
      const s = await loginWith(small.login({}, owner).url);
      const streams = [await EventStreamReader.open(s), await EventStreamReader.open(s)];
      expect(streams.map((x) => x.response.status)).toEqual([200, 200]);
      await expect(fetch(`${url}api/session`, { headers: { cookie: s.cookie } })).rejects.toThrow();
      streams[0]!.close();
      await waitFor(
        async () =>
          (await fetch(`${url}api/session`, { headers: { cookie: s.cookie } }).catch(() => undefined))
            ?.status === 200,
        'a free connection again',
      );
      streams[1]!.close();
    } finally {
      await small.close();
    }
  });
});

describe('sessions over HTTP', () => {
  it('an idle session ends after 12 hours, its stream with it', async () => {
    const s = await loginWith(server.login({}, owner).url);
    const stream = await EventStreamReader.open(s);
    await waitFor(() => stream.comments > 0, 'a heartbeat comment on the stream');
    for (const l of timeline) l({ id: 1, ts: 0, taskId: null, type: 'vm.started', data: {} });
    await stream.next('timeline', () => true, 'a timeline entry');
    clock.t += SESSION_IDLE_MS;
    await waitFor(() => stream.ended, 'the stream of the expired session to end');
    expect((await fetch(`${base}api/session`, { headers: { cookie: s.cookie } })).status).toBe(401);
  });

  it('a revoke by another process ends the session within the sweep', async () => {
    const s = await loginWith(server.login({ role: 'operator' }, owner).url);
    const stream = await EventStreamReader.open(s);
    const other = new ControlStore({ file: store.file, clock });
    other.revokeDevice(s.deviceId, 'cli');
    other.close();
    await waitFor(() => stream.ended, 'the stream of the revoked device to end');
    expect((await fetch(`${base}api/session`, { headers: { cookie: s.cookie } })).status).toBe(401);
  });
});

describe('two dashboards on one host', () => {
  it('name their cookies apart, so a browser holds both sessions and neither server takes the other’s', async () => {
    const second = new DashboardServer({ api, devices: () => store, clock, packageRoot: root });
    const secondBase = (await second.start()).url;
    try {
      const a = await loginWith(server.login({}, owner).url);
      const b = await loginWith(second.login({}, owner).url);
      const nameOf = (c: string) => c.split('=')[0];
      expect(nameOf(a.cookie)).not.toBe(nameOf(b.cookie));
      // A browser sends every 127.0.0.1 cookie to every port: both servers get both cookies.
      const jar = `${a.cookie}; ${b.cookie}`;
      for (const url of [base, secondBase])
        expect((await fetch(`${url}api/session`, { headers: { cookie: jar } })).status, url).toBe(200);
      // A's session value under B's cookie name is no session of B's.
      const swapped = `${nameOf(b.cookie)}=${a.cookie.split('=')[1]}`;
      expect((await fetch(`${secondBase}api/session`, { headers: { cookie: swapped } })).status).toBe(401);
    } finally {
      await second.close();
    }
  });
});
