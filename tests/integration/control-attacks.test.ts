import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ControllerApi } from '../../src/host/api/controller.js';
import { RemoteAccess } from '../../src/host/channels/index.js';
import { configSchema } from '../../src/host/config/schema.js';
import {
  AUTH_FAILED_MESSAGE,
  CLOSE_CODES,
  ControlClient,
  ControlServer,
  type ControlServerOptions,
  ControlStore,
  type DeviceCredentials,
  type Role,
  type SecurityEvent,
} from '../../src/host/control/index.js';
import { CoworkError } from '../../src/host/errors.js';
import { hostPaths } from '../../src/host/paths.js';
import {
  authFrame,
  idleTcp,
  loopbackAddresses,
  type RawClient,
  rawClient,
  rawUpgrade,
} from '../helpers/control-attack.js';
import { selfSignedCert } from '../helpers/tls.js';

/**
 * The control API under attack, on loopback only: each test performs an attack that got
 * through once (plain ws off loopback, rotating source addresses against the pairing lockout,
 * id probing through error messages, lockouts and idle sockets as denial of service, cross-site
 * upgrades, unauthenticated memory) and asserts that it fails while the owner still gets in.
 */

const reached: string[] = [];
const api: ControllerApi = {
  status: async () => {
    reached.push('status');
    return {
      workspace: '/w',
      state: 'running',
      pid: 1,
      vm: { driver: 'qemu', accel: 'tcg', share: '9p', image: 'base', cpus: 1, memoryMiB: 512 },
      pendingApprovals: 0,
      tasks: { running: 0 },
    } as const;
  },
  exec: async () => {
    throw new CoworkError('internal', 'not used');
  },
  approvalsList: () => [],
  approvalsAnswer: () => {},
  tasksList: () => [],
  tasksGet: (id) => {
    throw new CoworkError('notFound', id);
  },
  tasksStart: async () => ({ id: 't' }),
  tasksCancel: () => {},
  timelineQuery: () => [],
  timelineSubscribe: () => () => {},
  stop: async () => {},
};

const clock = { t: Date.parse('2026-03-01T00:00:00Z'), now: () => clock.t };
let dir: string;
let events: SecurityEvent[];
let store: ControlStore;
let server: ControlServer;
let url: string;
let port: number;
const sockets: { destroy(): void }[] = [];
const clients: ControlClient[] = [];

async function startServer(extra: Partial<ControlServerOptions> = {}) {
  store = new ControlStore({
    file: join(dir, 'devices.sqlite'),
    clock,
    recorder: { record: (_t, e) => events.push(e) },
  });
  server = new ControlServer({
    api,
    store,
    listen: { host: '127.0.0.1', port: 0 },
    serverId: 'srv-attack',
    clock,
    recorder: { record: (_t, e) => events.push(e) },
    ...extra,
  });
  const started = await server.start();
  url = started.url;
  port = started.port;
}

async function restart(extra: Partial<ControlServerOptions> = {}) {
  await server.close();
  store.close();
  await startServer(extra);
}

async function pairDevice(role: Role = 'admin'): Promise<DeviceCredentials> {
  const { code } = store.createPairingCode({ role });
  const c = await ControlClient.connect(url);
  const creds = await c.pair(code, `${role}-device`);
  await c.close();
  return creds;
}

async function track(c: RawClient): Promise<RawClient> {
  sockets.push({ destroy: () => c.ws.terminate() });
  return c;
}

/** The owner's own client, from the default source address. */
async function ownerAuthenticates(creds: DeviceCredentials): Promise<void> {
  const c = await ControlClient.connect(url);
  clients.push(c);
  await c.authenticate(creds);
  await expect(c.call('status')).resolves.toMatchObject({ state: 'running' });
}

/** A port nothing listens on right now (found by binding loopback and letting go). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const p = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

function connectRefused(p: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port: p });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
  });
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cowork-attack-'));
  events = [];
  reached.length = 0;
  await startServer();
});

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const c of clients.splice(0)) await c.close().catch(() => {});
  await server.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('no plain ws:// off loopback', () => {
  it('refuses 0.0.0.0 with allowRemote but without TLS before binding, naming the config keys', async () => {
    const p = await freePort();
    for (const host of ['0.0.0.0', '::', '192.0.2.10']) {
      expect(
        () => new ControlServer({ api, store, serverId: 's', listen: { host, port: p }, allowRemote: true }),
      ).toThrow(
        expect.objectContaining({
          code: 'denied',
          message: expect.stringMatching(/without TLS.*\[control\] tls = \{ cert = .*key = /),
        }),
      );
    }
    expect(await connectRefused(p)).toBe(true);
  });

  it('RemoteAccess (the controller wiring of --listen/--allow-remote) refuses it and leaves nothing listening', async () => {
    const p = await freePort();
    const paths = hostPaths({ COWORK_VM_STATE_DIR: join(dir, 'state'), HOME: dir });
    await expect(
      RemoteAccess.start({
        config: configSchema.parse({}),
        api,
        paths,
        listen: `0.0.0.0:${p}`,
        allowRemote: true,
      }),
    ).rejects.toMatchObject({ code: 'denied', message: expect.stringMatching(/tls = \{ cert/) });
    expect(await connectRefused(p)).toBe(true);
  });

  it('with TLS (on loopback) the pairing reply, key included, only travels inside wss://', async () => {
    const { key, cert } = selfSignedCert('localhost', ['IP:127.0.0.1', 'DNS:localhost']);
    await restart({ tls: { key, cert } });
    expect(url).toMatch(/^wss:\/\//);
    const { code } = store.createPairingCode({ role: 'viewer' });
    const c = await track(await rawClient(url, { ca: cert }));
    c.send({ type: 'pair', code, name: 'tls-device' });
    const paired = await c.next();
    expect(paired).toMatchObject({ type: 'paired', deviceKey: expect.any(String) });
    // The same port does not speak plain WebSocket at all.
    await expect(rawClient(url.replace('wss:', 'ws:'))).rejects.toBeInstanceOf(Error);
  });
});

describe('pairing budget does not depend on the source address', () => {
  it('48 wrong codes from 12 rotating loopback addresses: the right code no longer pairs', async () => {
    // Valid for an hour, so that expiry is not what stops the attacker.
    const { code } = store.createPairingCode({ role: 'admin', ttlMs: 3600_000 });
    const answers: string[] = [];
    for (const [i, addr] of loopbackAddresses(12).entries()) {
      const c = await track(await rawClient(url, { localAddress: addr }));
      for (let k = 0; k < 4; k++) {
        c.send({ type: 'pair', code: `ZZZZ${'ABCDEFGHJKLM'[i]}${'ABCD'[k]}`, name: 'guess' });
        const f = (await c.next().catch(() => ({ type: 'closed' }))) as { error?: { code: string } };
        answers.push(f.error?.code ?? 'closed');
      }
      c.ws.terminate();
      clock.t += 60_000; // stay under the host-wide rate limit: this test is about the code's own budget
    }
    expect(answers.filter((a) => a === 'denied').length).toBeGreaterThanOrEqual(5);
    const c = await track(await rawClient(url, { localAddress: '127.0.0.99' }));
    c.send({ type: 'pair', code, name: 'attacker' });
    expect(await c.next()).toMatchObject({ type: 'error', error: { code: 'denied' } });
    expect(store.listDevices()).toEqual([]);
  });

  it('5 wrong codes, one from each of 5 addresses, withdraw every live code', async () => {
    const live = [store.createPairingCode({ role: 'admin' }), store.createPairingCode({ role: 'viewer' })];
    for (const addr of loopbackAddresses(5, 20)) {
      const c = await track(await rawClient(url, { localAddress: addr }));
      c.send({ type: 'pair', code: 'YYYYYY', name: 'guess' });
      expect(await c.next()).toMatchObject({ error: { code: 'denied' } });
    }
    for (const { code } of live) {
      const c = await track(await rawClient(url, { localAddress: '127.0.0.77' }));
      c.send({ type: 'pair', code, name: 'late' });
      expect(await c.next()).toMatchObject({ error: { code: 'denied' } });
    }
    expect(store.listDevices()).toEqual([]);
    expect(events.filter((e) => e.type === 'control.lockout' && e.key === 'pair:code')).toHaveLength(2);
  });

  it('rate limits pairing attempts host-wide, whatever the address', async () => {
    const results: string[] = [];
    for (const addr of loopbackAddresses(11, 30)) {
      const c = await track(await rawClient(url, { localAddress: addr }));
      // Malformed names are refused before counting; a well-formed attempt with a wrong code counts.
      c.send({ type: 'pair', code: 'XXXXXX', name: 'n' });
      const f = (await c.next().catch(() => ({ type: 'closed' }))) as { error?: { code: string } };
      results.push(f.error?.code ?? 'closed');
    }
    expect(results.slice(0, 10).every((r) => r === 'denied')).toBe(true);
    expect(results[10]).toBe('limitExceeded');
    expect(events).toContainEqual({ type: 'control.refused_locked', scope: 'pair', key: 'pair:host' });
    clock.t += 60_000;
    const { code } = store.createPairingCode({ role: 'viewer' });
    const c = await track(await rawClient(url, { localAddress: '127.0.0.200' }));
    c.send({ type: 'pair', code, name: 'owner' });
    expect(await c.next()).toMatchObject({ type: 'paired', role: 'viewer' });
  });
});

describe('failure messages do not reveal which device ids exist', () => {
  it('known id + wrong HMAC, unknown id, revoked id and a foreign nonce get byte-identical errors and close frames', async () => {
    const known = await pairDevice('admin');
    const revoked = await pairDevice('viewer');
    store.revokeDevice(revoked.deviceId, 'test');
    const wrongKey = Buffer.alloc(32, 5).toString('base64url');
    const outcomes: { frame: string; close: string }[] = [];
    const attempts = [
      { id: known.deviceId, key: wrongKey, from: '127.0.0.41' },
      { id: 'ffffffffff', key: wrongKey, from: '127.0.0.42' },
      { id: revoked.deviceId, key: revoked.deviceKey, from: '127.0.0.43' },
      {
        id: known.deviceId.replace(/.$/, (ch) => (ch === '0' ? '1' : '0')),
        key: known.deviceKey,
        from: '127.0.0.44',
      },
    ];
    // And an answer to a nonce this connection was never given, with the right key.
    attempts.push({ id: known.deviceId, key: known.deviceKey, from: '127.0.0.45' });
    for (const [i, a] of attempts.entries()) {
      const c = await track(await rawClient(url, { localAddress: a.from }));
      const frame = authFrame(c, a.id, a.key);
      c.send(i === 4 ? { ...frame, nonce: 'A'.repeat(43) } : frame);
      const f = await c.next();
      const closed = await c.closed;
      outcomes.push({ frame: JSON.stringify(f), close: `${closed.code} ${closed.reason}` });
    }
    expect(new Set(outcomes.map((o) => o.frame)).size).toBe(1);
    expect(new Set(outcomes.map((o) => o.close)).size).toBe(1);
    expect(JSON.parse(outcomes[0]!.frame)).toEqual({
      type: 'error',
      error: { code: 'denied', message: AUTH_FAILED_MESSAGE },
    });
    // The host still knows which one it was.
    expect(events.filter((e) => e.type === 'control.auth_failed').map((e) => e.reason)).toEqual([
      'wrong HMAC',
      'unknown or revoked device',
      'unknown or revoked device',
      'unknown or revoked device',
      'nonce was not issued to this connection or was already used',
    ]);
  });

  it('the lockout that follows does not depend on whether the ids existed', async () => {
    const known = await pairDevice('admin');
    const wrongKey = Buffer.alloc(32, 6).toString('base64url');
    const codesFor = async (from: string, id: string) => {
      const codes: number[] = [];
      for (let i = 0; i < 6; i++) {
        const c = await track(await rawClient(url, { localAddress: from }));
        c.send(authFrame(c, id, wrongKey));
        codes.push((await c.closed).code);
      }
      return codes;
    };
    const forKnown = await codesFor('127.0.0.51', known.deviceId);
    const forUnknown = await codesFor('127.0.0.52', 'eeeeeeeeee');
    expect(forKnown).toEqual(forUnknown);
    expect(forKnown.at(-1)).toBe(CLOSE_CODES.lockedOut);
  });
});

describe('lockouts and idle sockets cannot lock the owner out', () => {
  it('the owner authenticates while an attacker spams failed answers from the same address', async () => {
    const owner = await pairDevice('admin');
    const wrongKey = Buffer.alloc(32, 7).toString('base64url');
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 8; i++) {
        const c = await track(await rawClient(url, { localAddress: '127.0.0.1' }));
        // Garbage for an unknown id, and wrong answers naming the owner's id.
        c.send(authFrame(c, i % 2 ? owner.deviceId : `nobody${i}`, wrongKey));
        await c.closed;
      }
      await ownerAuthenticates(owner);
    }
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'control.lockout', key: 'auth:ip:127.0.0.1' }),
    );
  });

  it('five wrong pairing codes from 127.0.0.1 do not keep the owner from pairing a new code from there', async () => {
    for (let i = 0; i < 5; i++) {
      const c = await track(await rawClient(url, { localAddress: '127.0.0.1' }));
      c.send({ type: 'pair', code: 'WWWWWW', name: 'guess' });
      await c.next();
    }
    const { code } = store.createPairingCode({ role: 'operator' });
    const c = await ControlClient.connect(url);
    clients.push(c);
    await expect(c.pair(code, 'owner')).resolves.toMatchObject({ role: 'operator' });
  });

  it('70 idle unauthenticated WebSockets and 20 idle TCP sockets, some renewed, do not keep the owner out', async () => {
    const owner = await pairDevice('admin');
    const idle: RawClient[] = [];
    for (const addr of [...loopbackAddresses(35, 60), ...Array<string>(35).fill('127.0.0.1')]) {
      idle.push(await track(await rawClient(url, { localAddress: addr }).catch(() => undefined as never)));
    }
    const tcp: Socket[] = [];
    for (let i = 0; i < 20; i++) {
      const s = await idleTcp(port, '127.0.0.1');
      sockets.push(s);
      tcp.push(s);
    }
    // Renew a few, as the attack did.
    for (const addr of loopbackAddresses(10, 100))
      idle.push(await track(await rawClient(url, { localAddress: addr })));
    expect(server.unauthenticatedCount).toBeLessThanOrEqual(32);
    await ownerAuthenticates(owner);
    expect(server.unauthenticatedCount).toBeLessThanOrEqual(32);
    // Those that made room were told why: "try again later", not a silent drop.
    const closes: number[] = [];
    for (const c of idle) void c.closed.then((x) => closes.push(x.code));
    await vi.waitFor(() => expect(closes.length).toBeGreaterThanOrEqual(idle.length - 32), { timeout: 5000 });
    expect(new Set(closes)).toEqual(new Set([CLOSE_CODES.tryAgainLater]));
  });

  it('closes an idle unauthenticated socket after the handshake timeout (TCP that sends nothing, and a WebSocket that never answers)', async () => {
    await restart({ handshakeTimeoutMs: 300 });
    const tcp = await idleTcp(port);
    sockets.push(tcp);
    const tcpClosed = new Promise<void>((r) => tcp.once('close', () => r()));
    const ws = await track(await rawClient(url));
    const [wsClose] = await Promise.all([ws.closed, tcpClosed]);
    expect(wsClose.code).toBe(CLOSE_CODES.authFailed);
    expect(ws.frames).toContainEqual({
      type: 'error',
      error: { code: 'timeout', message: expect.any(String) },
    });
    expect(server.unauthenticatedCount).toBe(0);
  });

  it('a slow client that sends its upgrade headers byte by byte is cut off at the handshake timeout', async () => {
    await restart({ handshakeTimeoutMs: 300 });
    const s = await idleTcp(port);
    sockets.push(s);
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    const drip = setInterval(() => s.write('X'), 20);
    s.write('GET / HTTP/1.1\r\nHost: x\r\n');
    await closed;
    clearInterval(drip);
    expect(server.unauthenticatedCount).toBe(0);
  });
});

describe('Origin is refused at the HTTP upgrade', () => {
  it('answers 403 and never 101 to foreign origins', async () => {
    for (const origin of [
      'https://evil.example',
      'null',
      `http://127.0.0.1:${port}.evil.example`,
      `https://127.0.0.1:${port}`,
      `http://localhost:${port + 1}`,
      `http://LOCALHOST:${port}`,
      'file://',
    ]) {
      const res = await rawUpgrade(port, { origin });
      expect(res.status, origin).toBe(403);
      expect(res.head).not.toMatch(/101|Sec-WebSocket-Accept/i);
    }
    expect((await rawUpgrade(port, { origin: `http://127.0.0.1:${port}` })).status).toBe(101);
    expect((await rawUpgrade(port)).status).toBe(101);
    expect(events.filter((e) => e.type === 'control.origin_refused')).toHaveLength(7);
  });
});

/** A masked client frame header announcing `len` bytes of text (RFC 6455 §5.2). */
function frameHeader(len: number): Buffer {
  const h = Buffer.alloc(14);
  h[0] = 0x81;
  h[1] = 0x80 | 127;
  h.writeBigUInt64BE(BigInt(len), 2);
  h.writeUInt32BE(0x01020304, 10);
  return h;
}

/**
 * Performs the upgrade by hand; `closeCode` resolves with the code of the server's close frame
 * (server frames are unmasked: opcode byte, length byte, then the 2-byte code).
 */
function upgradedSocket(
  p: number,
  localAddress: string,
): Promise<{ socket: Socket; closeCode: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: '127.0.0.1', port: p, localAddress });
    let buf = Buffer.alloc(0);
    let upgraded = false;
    let onClose: (code: number) => void = () => {};
    const closeCode = new Promise<number>((r) => (onClose = r));
    socket.on('error', () => {});
    socket.on('close', () => onClose(-1));
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!buf.subarray(0, 12).toString().startsWith('HTTP/1.1 101')) return reject(new Error('no 101'));
        upgraded = true;
        buf = buf.subarray(end + 4);
        resolve({ socket, closeCode });
      }
      // Walk whole frames (all short here: the challenge and the close frame).
      while (buf.length >= 2) {
        const len = buf[1]! & 0x7f;
        const hdr = len === 126 ? 4 : 2;
        const size = len === 126 ? buf.readUInt16BE(2) : len;
        if (buf.length < hdr + size) return;
        if ((buf[0]! & 0x0f) === 0x8) onClose(buf.readUInt16BE(hdr));
        buf = buf.subarray(hdr + size);
      }
    });
    socket.write(
      `GET / HTTP/1.1\r\nHost: 127.0.0.1:${p}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
  });
}

describe('unauthenticated memory and authenticated request rate', () => {
  it('closes (1009) 20 connections that each start a 4 MiB frame before authenticating, before the frame is complete', async () => {
    // From 20 addresses, so that the per-address cap (which would evict most of them) is not what stops them.
    const conns = await Promise.all(loopbackAddresses(20, 150).map((a) => upgradedSocket(port, a)));
    for (const c of conns) sockets.push(c.socket);
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const closeCodes = await Promise.all(
      conns.map((c) => {
        c.socket.write(frameHeader(4 * 1024 * 1024));
        c.socket.write(chunk); // 64 KiB of the announced 4 MiB, and nothing more
        return c.closeCode;
      }),
    );
    expect(closeCodes).toEqual(Array(20).fill(1009));
    await vi.waitFor(() => expect(server.unauthenticatedCount).toBe(0));
    expect(events).toContainEqual(
      expect.objectContaining({
        type: 'control.protocol_error',
        reason: expect.stringMatching(/before authenticating/),
      }),
    );
    // The owner is unaffected.
    await ownerAuthenticates(await pairDevice('viewer'));
  });

  it('refuses a 5 KiB frame before authentication but accepts a 100 KiB one after', async () => {
    const creds = await pairDevice('admin');
    const c = await track(await rawClient(url));
    c.send({ type: 'pair', code: 'x'.repeat(5 * 1024), name: 'big' });
    expect(await c.next()).toMatchObject({ type: 'res', id: null, error: { code: 'limitExceeded' } });
    c.send(authFrame(c, creds.deviceId, creds.deviceKey));
    expect(await c.next()).toMatchObject({ type: 'auth-ok' });
    c.send({ type: 'req', id: 'big', method: 'tasks.get', params: { id: 'y'.repeat(100 * 1024) } });
    const res = await c.next();
    expect(res).toMatchObject({ type: 'res', id: 'big' });
    expect(JSON.stringify(res)).not.toMatch(/exceeds the limit/);
  });

  it('answers requests beyond the per-session rate with limitExceeded and serves again in the next minute', async () => {
    await restart({ requestsPerMinute: 5 });
    const creds = await pairDevice('viewer');
    const c = await ControlClient.connect(url);
    clients.push(c);
    await c.authenticate(creds);
    for (let i = 0; i < 5; i++) await expect(c.call('status')).resolves.toBeTruthy();
    await expect(c.call('status')).rejects.toMatchObject({
      code: 'limitExceeded',
      message: expect.stringMatching(/more than 5 requests in a minute/),
    });
    expect(reached).toHaveLength(5);
    clock.t += 60_000;
    await expect(c.call('status')).resolves.toBeTruthy();
  });
});

/** Code points that must never reach a listing: C0/C1, bidi controls, zero-width and BOM. */
function unsafeChars(s: string): string[] {
  return [...s].filter((ch) => {
    const c = ch.codePointAt(0)!;
    return (
      c < 0x20 ||
      (c >= 0x7f && c <= 0x9f) ||
      (c >= 0x200b && c <= 0x200f) ||
      (c >= 0x202a && c <= 0x202e) ||
      (c >= 0x2066 && c <= 0x2069) ||
      c === 0xfeff
    );
  });
}

describe('device names are sanitized at pairing', () => {
  const nasty = 'lap\u202Etop\u0007\u001b[31m\u200B\u2066x\u2069\u0085\u200F\uFEFF\u00A0name\n';

  it('stores a name with control, bidi and zero-width characters without them', async () => {
    const { code } = store.createPairingCode({ role: 'viewer' });
    const c = await ControlClient.connect(url);
    clients.push(c);
    const creds = await c.pair(code, nasty);
    const name = store.getDevice(creds.deviceId)?.name;
    expect(name).toBe('laptop[31mx name');
    expect(unsafeChars(name ?? '')).toEqual([]);
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'control.paired', name: 'laptop[31mx name' }),
    );
  });

  it('refuses a name with nothing printable, without using up the code, and bounds the length', async () => {
    const { code } = store.createPairingCode({ role: 'viewer' });
    const c = await ControlClient.connect(url);
    clients.push(c);
    await expect(c.pair(code, '\u202E\u200B\u0007')).rejects.toMatchObject({ code: 'invalidArgument' });
    const creds = await c.pair(code, 'é'.repeat(100));
    expect(store.getDevice(creds.deviceId)?.name).toBe('é'.repeat(64));
  });
});
