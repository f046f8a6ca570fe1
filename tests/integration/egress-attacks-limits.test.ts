import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type EgressEvent,
  EgressEventSchema,
  EgressProxy,
  type EgressProxyOptions,
} from '../../src/host/egress/index.js';
import { CoworkError } from '../../src/host/errors.js';
import {
  closeServer,
  connectVia,
  listen,
  rawExchange,
  startBlackHole,
  startCountingUpstream,
  statusesIn,
} from '../helpers/egress.js';

// Resource attacks on loopback with short limits: slow and idle clients are cut off, a flood
// of connections meets a 503 at the cap, and a black-holed upstream is answered 504 instead of
// waiting for the kernel's SYN retries. Assertions are on what happened, never on how long.

let upstream: Awaited<ReturnType<typeof startCountingUpstream>>;
const proxies: EgressProxy[] = [];
const clients: net.Socket[] = [];
const recordErrors: CoworkError[] = [];

beforeAll(async () => {
  upstream = await startCountingUpstream();
});
afterAll(async () => {
  await closeServer(upstream.server);
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  upstream.seen.length = 0;
  expect(recordErrors.splice(0)).toEqual([]);
});

async function startProxy(opts: Partial<EgressProxyOptions> = {}) {
  const events: EgressEvent[] = [];
  const proxy = new EgressProxy({
    rules: { allow: [`127.0.0.1:${upstream.port}`] },
    onEvent: (e) => events.push(EgressEventSchema.parse(e)),
    onRecordError: (err) => recordErrors.push(err),
    ...opts,
  });
  proxies.push(proxy);
  const { port } = await proxy.start();
  return { proxy, port, events };
}

/** Polls a condition the proxy reaches asynchronously (accepting, noticing a close). */
async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new CoworkError('timeout', `never happened: ${what}`);
}

/** A raw client that records what it receives and whether the proxy closed it. */
function rawClient(port: number): { socket: net.Socket; received: () => string; closed: Promise<void> } {
  const socket = net.connect(port, '127.0.0.1');
  clients.push(socket);
  let received = '';
  socket.on('data', (d: Buffer) => {
    received += d.toString('latin1');
  });
  socket.on('error', () => socket.destroy());
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  return { socket, received: () => received, closed };
}

const request = (path: string, extra = '') =>
  `GET http://127.0.0.1:${upstream.port}${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;

describe('slow and idle clients', () => {
  it('a slowloris client that never finishes its headers is answered 408 and cut off', async () => {
    const { port } = await startProxy({ headersTimeoutMs: 200 });
    const c = rawClient(port);
    c.socket.write(`GET http://127.0.0.1:${upstream.port}/slow HTTP/1.1\r\nHost: x\r\n`);
    let sent = 0;
    const trickle = setInterval(() => {
      if (!c.socket.destroyed) c.socket.write(`X-${sent++}: y\r\n`);
    }, 20);
    await c.closed;
    clearInterval(trickle);
    expect(statusesIn(c.received())).toEqual([408]);
    expect(c.received()).toContain('no complete request header block arrived within 200 ms');
    expect(sent).toBeGreaterThan(0); // it was still sending when it was cut off
    expect(upstream.seen).toEqual([]);
  });

  it('a connection that never sends anything is closed', async () => {
    const { port, proxy } = await startProxy({ headersTimeoutMs: 200 });
    const c = rawClient(port);
    await until('the proxy accepted the connection', () => proxy.openConnections === 1);
    await c.closed;
    await until('the proxy let go of it', () => proxy.openConnections === 0);
    expect(c.received()).not.toContain('HTTP/1.1 200');
  });

  it('a kept-alive connection with nothing in flight is closed after the idle timeout', async () => {
    const { port } = await startProxy({ idleTimeoutMs: 200 });
    const c = rawClient(port);
    c.socket.write(request('/once'));
    await c.closed;
    expect(statusesIn(c.received())).toEqual([200]); // answered, kept alive, then closed as idle
    expect(upstream.seen.map((s) => s.url)).toEqual(['/once']);
  });

  it('a header block over the limit is answered 431', async () => {
    const { port, events } = await startProxy({ maxHeaderBytes: 2048 });
    const reply = await rawExchange(port, request('/big', `X-Pad: ${'a'.repeat(4096)}\r\n`));
    expect(statusesIn(reply)).toEqual([431]);
    expect(reply).toContain('larger than 2048 bytes');
    expect(upstream.seen).toEqual([]);
    expect(events).toMatchObject([{ decision: 'deny', stage: 'invalid', status: 431 }]);
  });

  it('an idle tunnel is closed and recorded', async () => {
    const echo = net.createServer((s) => s.pipe(s));
    await listen(echo);
    const eport = (echo.address() as net.AddressInfo).port;
    try {
      const { port, events } = await startProxy({
        rules: { allow: [`127.0.0.1:${eport}`] },
        tunnelIdleTimeoutMs: 200,
      });
      const tunnel = await connectVia(port, `127.0.0.1:${eport}`);
      clients.push(tunnel.socket);
      expect(tunnel.status).toBe(200);
      const echoed = new Promise<string>((r) => tunnel.socket.once('data', (d: Buffer) => r(d.toString())));
      tunnel.socket.write('ping');
      expect(await echoed).toBe('ping');
      await new Promise((r) => tunnel.socket.once('close', r));
      await until('the tunnel was recorded', () => events.length === 1);
      expect(events[0]).toMatchObject({ kind: 'connect', status: 200, bytesOut: 4, bytesIn: 4 });
      expect(events[0]?.error).toContain('carried nothing for 200 ms');
    } finally {
      await closeServer(echo);
    }
  });

  it('an upstream that accepts and never answers is cut off with a 504', async () => {
    // It reads (so it notices the proxy hanging up) and never answers.
    const mute = net.createServer((s) => s.on('error', () => s.destroy()).resume());
    await listen(mute);
    const mport = (mute.address() as net.AddressInfo).port;
    try {
      const { port } = await startProxy({
        rules: { allow: [`127.0.0.1:${mport}`] },
        tunnelIdleTimeoutMs: 200,
      });
      const reply = await rawExchange(port, `GET http://127.0.0.1:${mport}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect(statusesIn(reply)).toEqual([504]);
      expect(reply).toContain('the upstream sent nothing for 200 ms');
    } finally {
      await closeServer(mute);
    }
  });
});

describe('clients that never close their side', () => {
  it('are closed by the proxy after a refusal (CONNECT 403, plain 403, malformed 400)', async () => {
    const { port, proxy } = await startProxy({ rules: { allow: [] } });
    const attempts = [
      'CONNECT denied.example:443 HTTP/1.1\r\nHost: denied.example:443\r\n\r\n',
      `GET http://127.0.0.1:${upstream.port + 1}/ HTTP/1.1\r\nHost: x\r\n\r\n`,
      'GET http://x/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
    ];
    for (const bytes of attempts) {
      // allowHalfOpen: the client does not answer the proxy's FIN, like a hostile one.
      const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      clients.push(socket);
      let got = '';
      socket.on('data', (d: Buffer) => {
        got += d.toString('latin1');
      });
      socket.on('error', () => socket.destroy());
      const ended = new Promise((r) => socket.once('end', r));
      socket.write(bytes);
      await ended; // the answer is complete and the proxy sent its FIN
      expect(statusesIn(got), bytes).toHaveLength(1);
      // The proxy let go of the socket although this client's side is still open.
      await until(
        `the proxy released the socket after ${bytes.slice(0, 20)}`,
        () => proxy.openConnections === 0,
      );
    }
    await until('no connection is held', () => proxy.openConnections === 0);
  });
});

describe('connection cap', () => {
  it('holds at the cap, answers the rest 503 with the cap in the body, and recovers when one closes', async () => {
    const cap = 8;
    const { port, proxy, events } = await startProxy({ maxConnections: cap });
    const held = Array.from({ length: cap }, () => rawClient(port));
    for (const h of held) h.socket.write(`GET http://127.0.0.1:${upstream.port}/held HTTP/1.1\r\n`); // never finished
    await until('every held connection was accepted', () => proxy.openConnections === cap);

    const flood = await Promise.all(Array.from({ length: 40 }, () => rawExchange(port, request('/flood'))));
    for (const reply of flood) {
      expect(statusesIn(reply)).toEqual([503]);
      expect(reply).toContain(`at most ${cap} connections`);
    }
    expect(proxy.openConnections).toBe(cap);
    expect(upstream.seen).toEqual([]);
    const limitEvents = events.filter((e) => e.stage === 'limit');
    expect(limitEvents).toHaveLength(1); // one event per episode at the cap, not one per refusal
    expect(limitEvents[0]).toMatchObject({ decision: 'deny', status: 503 });

    held[0]?.socket.destroy();
    await until('the proxy noticed the close', () => proxy.openConnections === cap - 1);
    const reply = await rawExchange(port, request('/after', 'Connection: close\r\n'));
    expect(statusesIn(reply)).toEqual([200]);
    expect(upstream.seen.map((s) => s.url)).toEqual(['/after']);
  });

  it('refuses a cap or timeout outside its range, naming the option and the range', () => {
    expect(() => new EgressProxy({ maxConnections: 0 })).toThrow(
      /maxConnections = 0 is out of range: it must be an integer from 1 to 65536/,
    );
    expect(() => new EgressProxy({ headersTimeoutMs: 1.5 })).toThrow(/headersTimeoutMs = 1.5/);
    expect(() => new EgressProxy({ connectTimeoutMs: -1 })).toThrow(CoworkError);
  });
});

describe('black-holed upstreams', () => {
  it('plain HTTP and CONNECT to an address that never completes a handshake get a 504', async () => {
    const hole = await startBlackHole();
    try {
      const { port, events } = await startProxy({
        rules: { allow: [`127.0.0.1:${hole.port}`] },
        connectTimeoutMs: 200,
      });
      const reply = await rawExchange(port, `GET http://127.0.0.1:${hole.port}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect(statusesIn(reply)).toEqual([504]);
      expect(reply).toContain(`127.0.0.1 port ${hole.port} did not accept the connection within 200 ms`);
      const tunnel = await connectVia(port, `127.0.0.1:${hole.port}`);
      expect(tunnel.status).toBe(504);
      expect(tunnel.body).toContain('did not accept the connection within 200 ms');
      await until('both were recorded', () => events.length === 2);
      expect(events.map((e) => [e.kind, e.decision, e.status])).toEqual([
        ['http', 'allow', 504],
        ['connect', 'allow', 504],
      ]);
    } finally {
      await hole.stop();
    }
  });
});
