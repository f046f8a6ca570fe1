import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { ControllerApi, Origin } from '../../src/host/api/controller.js';
import type { PendingApproval, Verdict } from '../../src/host/approvals/types.js';
import { controlSchema } from '../../src/host/config/schema.js';
import {
  CLOSE_CODES,
  ControlClient,
  ControlServer,
  ControlStore,
  computeAuthHmac,
  controlServerFromConfig,
  type DeviceCredentials,
  parseListen,
  type Role,
  type SecurityEvent,
} from '../../src/host/control/index.js';
import { AUTH_FAILED_MESSAGE } from '../../src/host/control/session.js';
import { CoworkError } from '../../src/host/errors.js';
import { Timeline } from '../../src/host/timeline/index.js';
import { rawUpgrade } from '../helpers/control-attack.js';
import { selfSignedCert } from '../helpers/tls.js';
import { waitFor } from '../helpers/wait.js';

/** The seam, not the thing under test: records every call the control API makes. */
class RecordingApi implements ControllerApi {
  calls: { method: string; args: unknown[] }[] = [];
  private listeners = new Set<(e: unknown) => void>();
  private rec(method: string, ...args: unknown[]) {
    this.calls.push({ method, args });
  }
  emit(event: unknown) {
    for (const l of this.listeners) l(event);
  }
  get subscriberCount() {
    return this.listeners.size;
  }
  async status() {
    this.rec('status');
    return {
      workspace: '/w',
      state: 'running',
      pid: 1,
      vm: { driver: 'qemu', accel: 'tcg', share: '9p', image: 'base', cpus: 1, memoryMiB: 512 },
      pendingApprovals: 0,
      tasks: { running: 0 },
    } as const;
  }
  async exec(req: { command: string }, origin: Origin, opts?: { onStdout?: (c: Buffer) => void }) {
    this.rec('exec', req, origin);
    opts?.onStdout?.(Buffer.from('hi\n'));
    return {
      decision: { effect: 'allow' as const, reasons: [], layer: 'context' as const },
      result: {
        exitCode: 0,
        signal: null,
        stdout: 'hi\n',
        stderr: '',
        truncated: false,
        durationMs: 1,
        timedOut: false,
      },
    };
  }
  approvalsList(): PendingApproval[] {
    this.rec('approvalsList');
    return [];
  }
  approvalsAnswer(id: string, verdict: Omit<Verdict, 'by'>, origin: Origin) {
    this.rec('approvalsAnswer', id, verdict, origin);
  }
  tasksList(opts?: { limit?: number }) {
    this.rec('tasksList', opts);
    return [];
  }
  tasksGet(id: string) {
    this.rec('tasksGet', id);
    return { id, title: 't', status: 'done', context: 'gateway' as const, origin: 'x', createdAt: 'now' };
  }
  async tasksStart(req: { prompt: string }, origin: Origin) {
    this.rec('tasksStart', req, origin);
    return { id: 'task1' };
  }
  tasksCancel(id: string, origin: Origin) {
    this.rec('tasksCancel', id, origin);
  }
  timelineQuery(q: unknown) {
    this.rec('timelineQuery', q);
    return [{ id: 1 }];
  }
  timelineSubscribe(listener: (e: unknown) => void) {
    this.rec('timelineSubscribe');
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  async stop(origin: Origin) {
    this.rec('stop', origin);
  }
}

class ManualClock {
  t = Date.parse('2026-01-01T00:00:00Z');
  now() {
    return this.t;
  }
}

let dir: string;
let clock: ManualClock;
let api: RecordingApi;
let events: SecurityEvent[];
let store: ControlStore;
let server: ControlServer;
let url: string;
const openClients: ControlClient[] = [];

async function startServer(extra: Partial<ConstructorParameters<typeof ControlServer>[0]> = {}) {
  store = new ControlStore({
    file: join(dir, 'devices.sqlite'),
    clock,
    recorder: { record: (_t, e) => events.push(e) },
  });
  server = new ControlServer({
    api,
    store,
    listen: { host: '127.0.0.1', port: 0 },
    serverId: 'srv-test',
    clock,
    recorder: { record: (_t, e) => events.push(e) },
    revocationSweepMs: 50,
    ...extra,
  });
  url = (await server.start()).url;
}

async function connect(opts: { origin?: string } = {}) {
  const c = await ControlClient.connect(url, opts);
  openClients.push(c);
  return c;
}

async function pairDevice(role: Role): Promise<DeviceCredentials> {
  const { code } = store.createPairingCode({ role });
  const c = await connect();
  const creds = await c.pair(code, `${role}-device`);
  await c.close();
  return creds;
}

async function authed(creds: DeviceCredentials) {
  const c = await connect();
  await c.authenticate(creds);
  return c;
}

/** A raw WebSocket upgrade request; resolves with the HTTP status the server answered. */
async function upgradeStatus(opts: { origin?: string } = {}): Promise<number> {
  const res = await rawUpgrade(Number(new URL(url).port), opts);
  return res.status;
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cowork-control-'));
  clock = new ManualClock();
  api = new RecordingApi();
  events = [];
  await startServer();
});

afterEach(async () => {
  for (const c of openClients.splice(0)) await c.close().catch(() => {});
  await server.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('authentication', () => {
  it('pairs, then authenticates by challenge-response and calls a method', async () => {
    const creds = await pairDevice('viewer');
    expect(Buffer.from(creds.deviceKey, 'base64url')).toHaveLength(32);
    expect(creds.serverId).toBe('srv-test');
    const c = await authed(creds);
    expect(c.challenge.nonce).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const status = (await c.call('status')) as { state: string };
    expect(status.state).toBe('running');
    expect(events.map((e) => e.type)).toContain('control.auth_ok');
  });

  it('gives every connection a different nonce', async () => {
    const a = await connect();
    const b = await connect();
    expect(a.challenge.nonce).not.toBe(b.challenge.nonce);
  });

  it('refuses a wrong HMAC and closes with 4001', async () => {
    const creds = await pairDevice('admin');
    const c = await connect();
    const wrong = { ...creds, deviceKey: Buffer.alloc(32, 7).toString('base64url') };
    await expect(c.authenticate(wrong)).rejects.toMatchObject({
      code: 'denied',
      message: AUTH_FAILED_MESSAGE,
    });
    expect((await c.closed).code).toBe(CLOSE_CODES.authFailed);
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'control.auth_failed', reason: 'wrong HMAC' }),
    );
    expect(api.calls).toHaveLength(0);
  });

  it('refuses an unknown device id', async () => {
    const c = await connect();
    const fake = {
      deviceId: 'nobody',
      deviceKey: Buffer.alloc(32).toString('base64url'),
      serverId: 'srv-test',
      role: 'admin' as const,
    };
    await expect(c.authenticate(fake)).rejects.toMatchObject({ code: 'denied' });
    expect((await c.closed).code).toBe(CLOSE_CODES.authFailed);
  });

  it('refuses a replayed answer on a new connection', async () => {
    const creds = await pairDevice('admin');
    const victim = await connect();
    const hmac = computeAuthHmac(
      Buffer.from(creds.deviceKey, 'base64url'),
      victim.challenge.nonce,
      'srv-test',
    );
    const answer = JSON.stringify({
      type: 'auth',
      deviceId: creds.deviceId,
      nonce: victim.challenge.nonce,
      hmac,
    });
    victim.sendRaw(answer);
    await expect(victim.call('status')).resolves.toBeTruthy();

    const attacker = await connect();
    const frames: unknown[] = [];
    attacker.on('protocol-error', (e) => frames.push(e));
    attacker.sendRaw(answer);
    expect((await attacker.closed).code).toBe(CLOSE_CODES.authFailed);
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'control.auth_failed', reason: expect.stringMatching(/nonce/) }),
    );
  });

  it('refuses an answer stolen in flight and used on another connection, and the owner still succeeds', async () => {
    const creds = await pairDevice('operator');
    const owner = await connect();
    const hmac = computeAuthHmac(
      Buffer.from(creds.deviceKey, 'base64url'),
      owner.challenge.nonce,
      'srv-test',
    );
    const attacker = await connect();
    attacker.sendRaw(
      JSON.stringify({ type: 'auth', deviceId: creds.deviceId, nonce: owner.challenge.nonce, hmac }),
    );
    expect((await attacker.closed).code).toBe(CLOSE_CODES.authFailed);
    await expect(owner.authenticate(creds)).resolves.toMatchObject({ role: 'operator' });
  });

  it('refuses a second answer on the same connection', async () => {
    const creds = await pairDevice('viewer');
    const c = await authed(creds);
    const errors: { code: string }[] = [];
    c.on('protocol-error', (e) => errors.push(e));
    const hmac = computeAuthHmac(Buffer.from(creds.deviceKey, 'base64url'), c.challenge.nonce, 'srv-test');
    c.sendRaw(JSON.stringify({ type: 'auth', deviceId: creds.deviceId, nonce: c.challenge.nonce, hmac }));
    await c.call('status');
    expect(errors).toEqual([expect.objectContaining({ code: 'invalidState' })]);
  });

  it('refuses an answer that comes after 10 s (injected clock)', async () => {
    const creds = await pairDevice('admin');
    const c = await connect();
    clock.t += 10_001;
    await expect(c.authenticate(creds)).rejects.toMatchObject({ message: AUTH_FAILED_MESSAGE });
    expect(events).toContainEqual(
      expect.objectContaining({
        type: 'control.auth_failed',
        reason: 'answer came after the challenge expired',
      }),
    );
    expect((await c.closed).code).toBe(CLOSE_CODES.authFailed);
  });

  it('accepts an answer at exactly 10 s', async () => {
    const creds = await pairDevice('admin');
    const c = await connect();
    clock.t += 10_000;
    await expect(c.authenticate(creds)).resolves.toMatchObject({ deviceId: creds.deviceId });
  });

  it('closes a connection that never answers (real timer, short limit)', async () => {
    await server.close();
    store.close();
    await startServer({ authTimeoutMs: 200 });
    const c = await connect();
    expect((await c.closed).code).toBe(CLOSE_CODES.authFailed);
  });

  it('refuses credentials made for another server id', async () => {
    const creds = await pairDevice('admin');
    const c = await connect();
    await expect(c.authenticate({ ...creds, serverId: 'other' })).rejects.toMatchObject({ code: 'denied' });
  });

  it('a revoked device cannot authenticate', async () => {
    const creds = await pairDevice('admin');
    store.revokeDevice(creds.deviceId, 'test');
    const c = await connect();
    await expect(c.authenticate(creds)).rejects.toMatchObject({ message: expect.stringMatching(/revoked/) });
  });
});

describe('protocol errors', () => {
  it('answers a method call before auth with a typed error and never reaches the API', async () => {
    const c = await connect();
    await expect(c.call('status')).rejects.toMatchObject({
      code: 'denied',
      message: expect.stringMatching(/not authenticated/),
    });
    await expect(c.call('exec', { command: 'id' })).rejects.toMatchObject({ code: 'denied' });
    expect(api.calls).toHaveLength(0);
  });

  it('closes with 4008 after 5 protocol errors', async () => {
    const c = await connect();
    for (let i = 0; i < 4; i++) await expect(c.call('status')).rejects.toMatchObject({ code: 'denied' });
    await expect(c.call('status')).rejects.toBeInstanceOf(CoworkError);
    expect((await c.closed).code).toBe(CLOSE_CODES.protocolAbuse);
  });

  it('answers malformed JSON, wrong shapes, binary frames, unknown methods and bad params with typed errors', async () => {
    const c = await authed(await pairDevice('admin'));
    const errors: { code: string; message: string }[] = [];
    c.on('protocol-error', (e) => errors.push(e));
    c.sendRaw('{not json');
    c.sendRaw(JSON.stringify({ type: 'req', id: 'x', method: 'status', params: {}, extra: 1 }));
    c.sendRaw(Buffer.from([1, 2, 3]), { binary: true });
    await expect(c.call('nope')).rejects.toMatchObject({
      code: 'notFound',
      message: expect.stringMatching(/unknown method/),
    });
    expect(errors.map((e) => e.code)).toEqual(['invalidArgument', 'invalidArgument']);
    await expect(c.call('tasks.get', { id: 5 })).rejects.toMatchObject({ code: 'invalidArgument' });
    expect((await c.closed).code).toBe(CLOSE_CODES.protocolAbuse);
    expect(api.calls).toHaveLength(0);
  });

  it('rejects unknown keys in params (strict schemas)', async () => {
    const c = await authed(await pairDevice('admin'));
    await expect(c.call('exec', { command: 'id', context: 'local' })).rejects.toMatchObject({
      code: 'invalidArgument',
    });
    expect(api.calls).toHaveLength(0);
  });

  it('answers an oversized frame with limitExceeded and a huge one with close 1009', async () => {
    await server.close();
    store.close();
    await startServer({ maxFrameBytes: 1024 });
    const c = await authed(await pairDevice('admin'));
    const errors: { code: string }[] = [];
    c.on('protocol-error', (e) => errors.push(e));
    c.sendRaw(
      JSON.stringify({ type: 'req', id: 'big', method: 'exec', params: { command: 'x'.repeat(2000) } }),
    );
    // The oversized frame is not parsed, so its answer carries id null: a call would never be matched.
    await expect(c.call('exec', { command: 'x'.repeat(2000) }, { timeoutMs: 300 })).rejects.toMatchObject({
      code: 'timeout',
    });
    await expect(c.call('status')).resolves.toBeTruthy();
    expect(errors).toEqual([
      expect.objectContaining({ code: 'limitExceeded' }),
      expect.objectContaining({ code: 'limitExceeded' }),
    ]);
    expect(api.calls.map((x) => x.method)).toEqual(['status']);
    c.sendRaw('x'.repeat(5000));
    expect((await c.closed).code).toBe(1009);
  });

  it('accepts a frame at the default 1 MiB limit and refuses one above it', async () => {
    const c = await authed(await pairDevice('admin'));
    const errors: { code: string }[] = [];
    c.on('protocol-error', (e) => errors.push(e));
    const frame = (n: number) =>
      JSON.stringify({
        type: 'req',
        id: 'a',
        method: 'exec',
        params: { command: 'id', stdin: 'y'.repeat(n) },
      });
    const fits = 1024 * 1024 - frame(0).length;
    c.sendRaw(frame(fits));
    c.sendRaw(frame(fits + 1));
    await expect(c.call('status')).resolves.toBeTruthy();
    expect(api.calls.map((x) => x.method)).toEqual(['exec', 'status']);
    expect(errors).toEqual([expect.objectContaining({ code: 'limitExceeded' })]);
  });
});

describe('lockouts', () => {
  async function failAuth(creds: DeviceCredentials) {
    const c = await connect();
    await c.authenticate({ ...creds, deviceKey: Buffer.alloc(32, 1).toString('base64url') }).catch(() => {});
    return (await c.closed).code;
  }

  it("closes an IP's failed answers with 4009 after 5 failures, for 5 minutes; its correct answers still pass", async () => {
    const creds = await pairDevice('admin');
    const codes = [];
    for (let i = 0; i < 6; i++) codes.push(await failAuth(creds));
    expect(codes).toEqual([4001, 4001, 4001, 4001, CLOSE_CODES.lockedOut, CLOSE_CODES.lockedOut]);
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'control.lockout', scope: 'auth', key: 'auth:ip:127.0.0.1' }),
    );
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'control.refused_locked', scope: 'auth', key: 'auth:ip:127.0.0.1' }),
    );
    // The device owner on the same address is not locked out by someone else's failures.
    await expect((await authed(creds)).call('status')).resolves.toBeTruthy();
    clock.t += 5 * 60_000 - 1;
    expect(await failAuth(creds)).toBe(CLOSE_CODES.lockedOut);
    clock.t += 1;
    expect(await failAuth(creds)).toBe(4001);
  });

  it('keeps an IP lockout across a server restart (same SQLite file)', async () => {
    const creds = await pairDevice('admin');
    for (let i = 0; i < 5; i++) await failAuth(creds);
    await server.close();
    store.close();
    await startServer();
    expect(await failAuth(creds)).toBe(CLOSE_CODES.lockedOut);
    await expect(authed(creds)).resolves.toBeInstanceOf(ControlClient);
    clock.t += 5 * 60_000;
    expect(await failAuth(creds)).toBe(4001);
  });
});

describe('pairing', () => {
  it('refuses an expired code', async () => {
    const { code } = store.createPairingCode({ role: 'admin' });
    clock.t += 5 * 60_000;
    const c = await connect();
    await expect(c.pair(code, 'late')).rejects.toMatchObject({ code: 'denied' });
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'control.pair_failed', reason: 'code expired' }),
    );
  });

  it('refuses a used code', async () => {
    const { code } = store.createPairingCode({ role: 'admin' });
    await (await connect()).pair(code, 'first');
    await expect((await connect()).pair(code, 'second')).rejects.toMatchObject({ code: 'denied' });
    expect(store.listDevices().map((d) => d.name)).toEqual(['first']);
  });

  it('accepts lowercase input of a valid code', async () => {
    const { code } = store.createPairingCode({ role: 'viewer' });
    await expect((await connect()).pair(code.toLowerCase(), 'lc')).resolves.toMatchObject({ role: 'viewer' });
  });

  it('withdraws the live code after 5 wrong codes, across restarts; a code made afterwards pairs at once from the same address', async () => {
    const live = store.createPairingCode({ role: 'admin' });
    const c = await connect();
    for (let i = 0; i < 5; i++)
      await expect(c.pair('ZZZZZZ', 'guess')).rejects.toMatchObject({ code: 'denied' });
    await server.close();
    store.close();
    await startServer();
    await expect((await connect()).pair(live.code, 'real')).rejects.toMatchObject({ code: 'denied' });
    expect(events).toContainEqual(
      expect.objectContaining({
        type: 'control.pair_failed',
        reason: 'code withdrawn after too many wrong attempts',
      }),
    );
    const fresh = store.createPairingCode({ role: 'admin' });
    await expect((await connect()).pair(fresh.code, 'real')).resolves.toMatchObject({ role: 'admin' });
  });
});

describe('revocation', () => {
  it('closes a live session at once when revoked in-process (4010)', async () => {
    const creds = await pairDevice('viewer');
    const c = await authed(creds);
    await c.call('status');
    store.revokeDevice(creds.deviceId, 'test');
    expect((await c.closed).code).toBe(CLOSE_CODES.deviceRevoked);
  });

  it('closes a live session revoked by another process on the same store file', async () => {
    const creds = await pairDevice('viewer');
    const c = await authed(creds);
    const other = new ControlStore({ file: join(dir, 'devices.sqlite') });
    other.revokeDevice(creds.deviceId, 'cli');
    other.close();
    expect((await c.closed).code).toBe(CLOSE_CODES.deviceRevoked);
  });

  it('an admin can revoke another device over the API', async () => {
    const victim = await pairDevice('viewer');
    const v = await authed(victim);
    const admin = await authed(await pairDevice('admin'));
    await admin.call('devices.revoke', { id: victim.deviceId });
    expect((await v.closed).code).toBe(CLOSE_CODES.deviceRevoked);
  });
});

describe('origins and binding', () => {
  it('refuses a foreign browser origin with 403 before the upgrade and allows none, listed and own loopback origins', async () => {
    expect(await upgradeStatus({ origin: 'https://evil.example' })).toBe(403);
    const port = new URL(url).port;
    expect(await upgradeStatus({ origin: `http://localhost:${Number(port) + 1}` })).toBe(403);
    expect(await upgradeStatus({ origin: 'null' })).toBe(403);
    await expect(connect({ origin: `http://127.0.0.1:${port}` })).resolves.toBeInstanceOf(ControlClient);
    await expect(connect()).resolves.toBeInstanceOf(ControlClient);
    await server.close();
    store.close();
    await startServer({ allowedOrigins: ['https://dash.example'] });
    await expect(connect({ origin: 'https://dash.example' })).resolves.toBeInstanceOf(ControlClient);
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'control.origin_refused', origin: 'https://evil.example' }),
    );
  });

  it('refuses to bind a non-loopback address without allowRemote or without TLS; warns with both', () => {
    const base = { api, store, serverId: 's', listen: { host: '0.0.0.0', port: 0 } };
    expect(() => new ControlServer(base)).toThrow(expect.objectContaining({ code: 'denied' }));
    expect(() => new ControlServer({ ...base, allowRemote: true })).toThrow(
      expect.objectContaining({
        code: 'denied',
        message: expect.stringMatching(/without TLS.*tls = \{ cert/),
      }),
    );
    const warnings: string[] = [];
    const { key, cert } = selfSignedCert('localhost');
    new ControlServer({
      ...base,
      allowRemote: true,
      tls: { key, cert },
      logger: { warn: (m) => warnings.push(m) },
    });
    expect(warnings[0]).toMatch(/reachable from other machines/);
  });

  it('refuses authenticated sessions beyond maxConnections with 1013 and accepts again once one closes', async () => {
    await server.close();
    store.close();
    await startServer({ maxConnections: 2 });
    const creds = await pairDevice('viewer');
    const a = await authed(creds);
    await authed(creds);
    const third = await connect();
    await expect(third.authenticate(creds)).rejects.toMatchObject({ code: 'unavailable' });
    expect((await third.closed).code).toBe(CLOSE_CODES.tryAgainLater);
    await a.close();
    await waitFor(() => server.sessionCount < 2, 'the server to drop the closed connection');
    await expect(authed(creds)).resolves.toBeInstanceOf(ControlClient);
  });

  it('answers plain HTTP with 426', async () => {
    const res = await fetch(url.replace('ws:', 'http:'));
    expect(res.status).toBe(426);
  });
});

describe('methods', () => {
  it('runs exec in the gateway context with origin device:<id>', async () => {
    const creds = await pairDevice('admin');
    const c = await authed(creds);
    const out = (await c.call('exec', { command: 'echo hi' })) as { result: { stdout: string } };
    expect(out.result.stdout).toBe('hi\n');
    expect(api.calls).toEqual([
      {
        method: 'exec',
        args: [{ command: 'echo hi' }, { id: `device:${creds.deviceId}`, context: 'gateway' }],
      },
    ]);
  });

  it('streams exec output as exec.output events when asked', async () => {
    const c = await authed(await pairDevice('admin'));
    const got: unknown[] = [];
    c.on('event', (f: { event: string; data: unknown }) => got.push(f));
    await c.call('exec', { command: 'echo hi', stream: true });
    expect(got).toEqual([
      {
        type: 'event',
        event: 'exec.output',
        data: { requestId: expect.any(String), stream: 'stdout', data: 'hi\n' },
      },
    ]);
    expect(api.calls[0]?.args[0]).toEqual({ command: 'echo hi' });
    await c.call('exec', { command: 'echo hi' });
    expect(got).toHaveLength(1);
  });

  it('pushes timeline events to subscribers and stops after unsubscribe or close', async () => {
    const c = await authed(await pairDevice('viewer'));
    const got: unknown[] = [];
    const unsubscribe = await c.subscribe((e) => got.push(e));
    api.emit({ id: 1, type: 'x' });
    await c.call('status');
    expect(got).toEqual([{ id: 1, type: 'x' }]);
    await unsubscribe();
    api.emit({ id: 2 });
    await c.call('status');
    expect(got).toHaveLength(1);
    await c.subscribe(() => {});
    expect(api.subscriberCount).toBe(1);
    await c.close();
    await waitFor(() => api.subscriberCount === 0, 'the subscription to end with the connection');
  });

  it('passes API errors through as typed errors', async () => {
    api.tasksGet = () => {
      throw new CoworkError('notFound', 'no task x');
    };
    const c = await authed(await pairDevice('viewer'));
    await expect(c.call('tasks.get', { id: 'x' })).rejects.toMatchObject({
      code: 'notFound',
      message: 'no task x',
    });
    await expect(c.call('status')).resolves.toBeTruthy();
  });
});

describe('store file and TLS', () => {
  it('keeps the device store private (0600)', () => {
    expect(statSync(join(dir, 'devices.sqlite')).mode & 0o777).toBe(0o600);
  });

  it('serves wss with a certificate from config', async () => {
    const { key, cert } = selfSignedCert('localhost', ['IP:127.0.0.1', 'DNS:localhost']);
    await server.close();
    store.close();
    await startServer({ tls: { cert, key } });
    expect(url).toMatch(/^wss:/);
    await expect(ControlClient.connect(url)).rejects.toBeInstanceOf(CoworkError); // untrusted cert
    const creds = await (async () => {
      const { code } = store.createPairingCode({ role: 'viewer' });
      const c = await ControlClient.connect(url, { ca: cert });
      openClients.push(c);
      return await c.pair(code, 'tls');
    })();
    const c = await ControlClient.connect(url, { ca: cert });
    openClients.push(c);
    await c.authenticate(creds);
    await expect(c.call('status')).resolves.toBeTruthy();
    // A plain ws:// client cannot talk to it.
    const plain = new WebSocket(url.replace('wss:', 'ws:'));
    await new Promise((r) => plain.once('close', r).once('error', r));
  });
});

describe('timeline', () => {
  it('records failures and lockouts in the real Timeline passed as the recorder', async () => {
    await server.close();
    store.close();
    const timeline = Timeline.open(join(dir, 'timeline.sqlite'));
    try {
      store = new ControlStore({ file: join(dir, 'devices.sqlite'), clock, recorder: timeline });
      server = new ControlServer({
        api,
        store,
        listen: { host: '127.0.0.1', port: 0 },
        serverId: 'srv-test',
        clock,
        recorder: timeline,
      });
      url = (await server.start()).url;
      const creds = await pairDevice('admin');
      for (let i = 0; i < 5; i++) {
        const c = await connect();
        await c
          .authenticate({ ...creds, deviceKey: Buffer.alloc(32, 9).toString('base64url') })
          .catch(() => {});
        await c.closed;
      }
      const sixth = await connect();
      await sixth
        .authenticate({ ...creds, deviceKey: Buffer.alloc(32, 9).toString('base64url') })
        .catch(() => {});
      expect((await sixth.closed).code).toBe(CLOSE_CODES.lockedOut);
      const types = timeline.query({}).map((e) => e.type);
      expect(types.filter((t) => t === 'control.auth_failed')).toHaveLength(6);
      expect(types).toContain('control.paired');
      expect(types).toContain('control.lockout');
      expect(types).toContain('control.refused_locked');
    } finally {
      await server.close();
      store.close();
      timeline.close();
      await startServer();
    }
  });
});

describe('from config', () => {
  it('is off without control.listen, and serves with it (server id from the store)', async () => {
    expect(controlServerFromConfig(controlSchema.parse({}), { api, store })).toBeUndefined();
    const s2 = controlServerFromConfig(controlSchema.parse({ listen: '127.0.0.1:0', maxFrameBytes: 2048 }), {
      api,
      store,
    })!;
    const { url: u2 } = await s2.start();
    try {
      const c = await ControlClient.connect(u2);
      expect(c.challenge.serverId).toBe(store.serverId());
      await c.close();
    } finally {
      await s2.close();
    }
  });

  it('parses HOST:PORT', () => {
    expect(parseListen('127.0.0.1:7077')).toEqual({ host: '127.0.0.1', port: 7077 });
    expect(parseListen('[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(() => parseListen('127.0.0.1')).toThrow(expect.objectContaining({ code: 'invalidArgument' }));
    expect(() => parseListen('h:70000')).toThrow(expect.objectContaining({ code: 'invalidArgument' }));
  });
});
