import http from 'node:http';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import {
  type EgressEvent,
  EgressEventSchema,
  EgressProxy,
  type EgressProxyOptions,
} from '../../src/host/egress/index.js';
import { CoworkError } from '../../src/host/errors.js';
import {
  closeServer,
  listen,
  rawExchange,
  startCountingUpstream,
  statusesIn,
  wsClientFrame,
  wsServerText,
} from '../helpers/egress.js';

// Protocol switches on loopback: WebSocket upgrades through the proxy to a real `ws` server
// (decided and recorded like any request), other upgrades refused, an upstream 101 nobody asked
// for answered instead of hanging, and CONNECT or an upgrade pipelined behind a pending GET
// refused instead of overtaking the GET's response.

let wsServer: WebSocketServer;
let wsPort: number;
let wsConnections = 0;
let upstream: Awaited<ReturnType<typeof startCountingUpstream>>;
const proxies: EgressProxy[] = [];
const recordErrors: CoworkError[] = [];

beforeAll(async () => {
  const server = http.createServer();
  wsServer = new WebSocketServer({ server });
  wsServer.on('connection', (ws) => {
    wsConnections += 1;
    ws.on('message', (m) => ws.send(`echo:${m.toString()}`));
  });
  await listen(server);
  wsPort = (server.address() as net.AddressInfo).port;
  upstream = await startCountingUpstream();
});
afterAll(async () => {
  for (const c of wsServer.clients) c.terminate();
  await new Promise((r) => wsServer.close(r));
  await closeServer(wsServer.options.server as http.Server);
  await closeServer(upstream.server);
});
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  upstream.seen.length = 0;
  expect(recordErrors.splice(0)).toEqual([]);
});

async function startProxy(opts: Partial<EgressProxyOptions> = {}) {
  const events: EgressEvent[] = [];
  const dialled: number[] = [];
  const proxy = new EgressProxy({
    rules: { allow: [`chat.test:${wsPort}`, `site.test:${upstream.port}`] },
    testResolve: { 'chat.test': '127.0.0.1', 'site.test': '127.0.0.1', 'secure.test': '127.0.0.1' },
    allowTestResolve: true,
    dial: (t) => {
      dialled.push(t.port);
      return net.connect({ host: t.address, port: t.port, family: t.family });
    },
    onEvent: (e) => events.push(EgressEventSchema.parse(e)),
    onRecordError: (err) => recordErrors.push(err),
    ...opts,
  });
  proxies.push(proxy);
  const { port } = await proxy.start();
  return { proxy, port, events, dialled };
}

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new CoworkError('timeout', `never happened: ${what}`);
}

const upgradeRequest = (host: string, extra = '') =>
  `GET http://${host}/chat HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;

describe('WebSocket upgrades', () => {
  it('tunnels an allowed upgrade to a real WebSocket server and records it with its bytes', async () => {
    const { port, events } = await startProxy();
    const socket = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
    });
    socket.write(upgradeRequest(`chat.test:${wsPort}`));
    await until('the 101 arrived', () => buf.includes('\r\n\r\n'));
    const headEnd = buf.indexOf('\r\n\r\n') + 4;
    const headText = buf.subarray(0, headEnd).toString();
    expect(headText).toMatch(/^HTTP\/1\.1 101 /);
    expect(headText).toMatch(/sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i);
    buf = buf.subarray(headEnd);
    socket.write(wsClientFrame('hello'));
    await until('the echo came back', () => wsServerText(buf) !== undefined);
    expect(wsServerText(buf)).toBe('echo:hello');
    socket.destroy();
    await until('the tunnel was recorded', () => events.length === 1);
    expect(events[0]).toMatchObject({
      kind: 'http',
      method: 'GET',
      host: 'chat.test',
      url: `http://chat.test:${wsPort}/chat`,
      decision: 'allow',
      stage: 'allow-list',
      status: 101,
      bytesOut: wsClientFrame('hello').length,
    });
    expect(events[0]?.bytesIn).toBeGreaterThanOrEqual(12); // the echoed frame
  });

  it('carries a real ws client through the proxy (absolute-form upgrade, as HTTP_PROXY clients send it)', async () => {
    const { port, events } = await startProxy();
    const target = `chat.test:${wsPort}`;
    const client = new WebSocket(`ws://${target}/chat`, {
      // Reach the proxy, not the target, and ask it in absolute form (what a proxy agent does).
      createConnection: () => net.connect(port, '127.0.0.1'),
      finishRequest: (req) => {
        req.path = `http://${target}/chat`;
        req.end();
      },
    });
    const echoed = await new Promise<string>((resolve, reject) => {
      client.on('open', () => client.send('over ws'));
      client.on('message', (m) => resolve(m.toString()));
      client.on('error', reject);
    });
    expect(echoed).toBe('echo:over ws');
    client.close();
    await until('the tunnel was recorded', () => events.length === 1);
    expect(events[0]).toMatchObject({ decision: 'allow', status: 101, host: 'chat.test' });
  });

  it('refuses an upgrade to a host the policy denies, before anything is dialled', async () => {
    const { port, events, dialled } = await startProxy({ rules: { allow: [] } });
    const before = wsConnections;
    const reply = await rawExchange(port, upgradeRequest(`chat.test:${wsPort}`));
    expect(statusesIn(reply)).toEqual([403]);
    expect(reply).toContain('Blocked by the cowork-vm egress policy');
    expect(dialled).toEqual([]);
    expect(wsConnections).toBe(before);
    expect(events).toMatchObject([{ decision: 'deny', status: 403, host: 'chat.test' }]);
  });

  it('refuses other upgrade protocols and upgrades with a body', async () => {
    const { port, dialled } = await startProxy();
    const h2c = `GET http://site.test:${upstream.port}/ HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n`;
    const reply = await rawExchange(port, h2c);
    expect(statusesIn(reply)).toEqual([501]);
    expect(reply).toContain('only GET with "Upgrade: websocket" is forwarded');
    const withBody = await rawExchange(
      port,
      `${upgradeRequest(`chat.test:${wsPort}`, 'Content-Length: 5\r\n')}hello`,
    );
    expect(statusesIn(withBody)).toEqual([400]);
    expect(dialled).toEqual([]);
    expect(upstream.seen).toEqual([]);
  });

  it('answers 504 when the upstream accepts the upgrade request and never answers', async () => {
    const mute = net.createServer((s) => s.on('error', () => s.destroy()).resume());
    await listen(mute);
    const mport = (mute.address() as net.AddressInfo).port;
    try {
      const { port, events } = await startProxy({
        rules: { allow: [`127.0.0.1:${mport}`] },
        tunnelIdleTimeoutMs: 200,
      });
      const reply = await rawExchange(port, upgradeRequest(`127.0.0.1:${mport}`));
      expect(statusesIn(reply)).toEqual([504]);
      expect(reply).toContain('the upstream sent nothing for 200 ms');
      await until('it was recorded', () => events.length === 1);
      expect(events[0]).toMatchObject({ decision: 'allow', status: 504 });
    } finally {
      await closeServer(mute);
    }
  });

  it('answers an upstream 101 to a plain request with a 502 instead of hanging', async () => {
    const switcher = net.createServer((s) => {
      s.on('error', () => s.destroy());
      s.once('data', () =>
        s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'),
      );
    });
    await listen(switcher);
    const sport = (switcher.address() as net.AddressInfo).port;
    try {
      const { port } = await startProxy({ rules: { allow: [`127.0.0.1:${sport}`] } });
      const reply = await rawExchange(port, `GET http://127.0.0.1:${sport}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect(statusesIn(reply)).toEqual([502]);
      expect(reply).toContain('switched protocols for a request that did not ask to');
    } finally {
      await closeServer(switcher);
    }
  });
});

describe('pipelining across CONNECT and upgrades', () => {
  it("a CONNECT behind a pending GET is refused after the GET's response; nothing is dialled for it", async () => {
    const { port, events, dialled } = await startProxy();
    const bytes =
      `GET http://site.test:${upstream.port}/first HTTP/1.1\r\nHost: x\r\n\r\n` +
      `CONNECT secure.test:${wsPort} HTTP/1.1\r\nHost: secure.test:${wsPort}\r\n\r\n`;
    const reply = await rawExchange(port, bytes);
    expect(statusesIn(reply)).toEqual([200, 400]);
    expect(reply.indexOf('reply to GET /first')).toBeLessThan(reply.indexOf('HTTP/1.1 400'));
    expect(reply).toContain('CONNECT pipelined behind an unanswered request');
    expect(reply).not.toContain('200 Connection Established');
    expect(dialled).toEqual([upstream.port]);
    await until('both were recorded', () => events.length === 2);
    expect(events.map((e) => [e.kind, e.decision, e.status])).toEqual(
      expect.arrayContaining([
        ['http', 'allow', 200],
        ['connect', 'deny', 400],
      ]),
    );
  });

  it('a CONNECT behind a refused request gets nothing but that refusal', async () => {
    const { port, dialled } = await startProxy();
    const bytes =
      `GET http://site.test:${upstream.port}/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n` +
      `CONNECT secure.test:${wsPort} HTTP/1.1\r\nHost: secure.test:${wsPort}\r\n\r\n`;
    const reply = await rawExchange(port, bytes);
    expect(statusesIn(reply)).toEqual([400]);
    expect(reply).toContain('Transfer-Encoding on a GET request');
    expect(dialled).toEqual([]);
  });

  it('an upgrade behind a pending GET is refused the same way', async () => {
    const { port, dialled } = await startProxy();
    const before = wsConnections;
    const bytes = `GET http://site.test:${upstream.port}/first HTTP/1.1\r\nHost: x\r\n\r\n${upgradeRequest(`chat.test:${wsPort}`)}`;
    const reply = await rawExchange(port, bytes);
    expect(statusesIn(reply)).toEqual([200, 400]);
    expect(reply).toContain('GET pipelined behind an unanswered request');
    expect(dialled).toEqual([upstream.port]);
    expect(wsConnections).toBe(before);
  });

  it('a CONNECT after the previous response on the same connection is still served', async () => {
    const { port } = await startProxy({
      rules: { allow: [`site.test:${upstream.port}`, `secure.test:${wsPort}`] },
    });
    const socket = net.connect(port, '127.0.0.1');
    let got = '';
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
    });
    socket.write(`GET http://site.test:${upstream.port}/first HTTP/1.1\r\nHost: x\r\n\r\n`);
    await until('the GET was answered', () => got.includes('reply to GET /first'));
    socket.write(`CONNECT secure.test:${wsPort} HTTP/1.1\r\nHost: secure.test:${wsPort}\r\n\r\n`);
    await until('the tunnel opened', () => got.includes('200 Connection Established'));
    socket.destroy();
  });
});
