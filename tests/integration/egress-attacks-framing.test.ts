import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  checkRequestFraming,
  type EgressEvent,
  EgressEventSchema,
  EgressProxy,
  type EgressProxyOptions,
} from '../../src/host/egress/index.js';
import type { CoworkError } from '../../src/host/errors.js';
import { closeServer, listen, rawExchange, startCountingUpstream, statusesIn } from '../helpers/egress.js';

// Request smuggling and response desync, performed on loopback: a raw client writes the attack
// bytes to the proxy in one write; the upstream (a lenient parser that counts what it reads)
// must never see the smuggled request, and no client may ever read another client's response.

let upstream: Awaited<ReturnType<typeof startCountingUpstream>>;
const proxies: EgressProxy[] = [];
const recordErrors: CoworkError[] = [];

beforeAll(async () => {
  upstream = await startCountingUpstream();
});
afterAll(async () => {
  await closeServer(upstream.server);
});
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  upstream.seen.length = 0;
  expect(recordErrors.splice(0)).toEqual([]);
});

async function startProxy(opts: Partial<EgressProxyOptions> = {}) {
  const events: EgressEvent[] = [];
  const proxy = new EgressProxy({
    rules: { allow: [`site.test:${upstream.port}`] },
    testResolve: { 'site.test': '127.0.0.1' },
    allowTestResolve: true,
    onEvent: (e) => events.push(EgressEventSchema.parse(e)),
    onRecordError: (err) => recordErrors.push(err),
    ...opts,
  });
  proxies.push(proxy);
  const { port } = await proxy.start();
  return { proxy, port, events };
}

const hostOf = () => `site.test:${upstream.port}`;
const smuggled = () => `GET /smuggled HTTP/1.1\r\nHost: ${hostOf()}\r\n\r\n`;
const head = (method: string, lines: string[], version = '1.1') =>
  `${method} http://${hostOf()}/first HTTP/${version}\r\nHost: ${hostOf()}\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`;
const chunk = (s: string) => `${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n0\r\n\r\n`;

/** Each attack: the bytes, built so that a proxy that mis-frames would pass `smuggled()` on as a request. */
const attacks: Record<string, () => string> = {
  'Content-Length named in Connection (GET)': () =>
    head('GET', ['Connection: content-length', `Content-Length: ${smuggled().length}`]) + smuggled(),
  'Content-Length named in Connection among other tokens (DELETE)': () =>
    head('DELETE', ['Connection: keep-alive, Content-Length', `Content-Length: ${smuggled().length}`]) +
    smuggled(),
  'Transfer-Encoding named in Connection (POST)': () =>
    head('POST', ['Connection: transfer-encoding', 'Transfer-Encoding: chunked']) + chunk(smuggled()),
  'Host named in Connection': () => head('GET', ['Connection: host']) + smuggled(),
  'Transfer-Encoding on GET': () => head('GET', ['Transfer-Encoding: chunked']) + chunk(smuggled()),
  'Transfer-Encoding on HEAD': () => head('HEAD', ['Transfer-Encoding: chunked']) + chunk(smuggled()),
  'Transfer-Encoding on OPTIONS': () => head('OPTIONS', ['Transfer-Encoding: chunked']) + chunk(smuggled()),
  'Transfer-Encoding on DELETE': () => head('DELETE', ['Transfer-Encoding: chunked']) + chunk(smuggled()),
  'Transfer-Encoding other than a lone chunked': () =>
    head('POST', ['Transfer-Encoding: gzip, chunked']) + chunk(smuggled()),
  'Transfer-Encoding chunked twice': () =>
    head('POST', ['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked']) + chunk(smuggled()),
  'Transfer-Encoding that is not chunked': () => head('POST', ['Transfer-Encoding: identity']) + smuggled(),
  'empty Transfer-Encoding': () => head('POST', ['Transfer-Encoding: ']) + smuggled(),
  'Transfer-Encoding in HTTP/1.0': () =>
    head('POST', ['Transfer-Encoding: chunked'], '1.0') + chunk(smuggled()),
  'Content-Length and Transfer-Encoding together': () =>
    head('POST', ['Content-Length: 4', 'Transfer-Encoding: chunked']) + chunk(smuggled()),
  'duplicate identical Content-Length': () =>
    head('POST', ['Content-Length: 0', 'Content-Length: 0']) + smuggled(),
  'duplicate differing Content-Length': () =>
    head('POST', [`Content-Length: ${smuggled().length}`, 'Content-Length: 0']) + smuggled(),
  'Content-Length list': () => head('POST', ['Content-Length: 0, 0']) + smuggled(),
  'signed Content-Length': () => head('POST', ['Content-Length: +0']) + smuggled(),
  'hex Content-Length': () => head('POST', ['Content-Length: 0x0']) + smuggled(),
  'obs-fold continuation line': () => head('GET', ['X-A: a', ' Content-Length: 40']) + smuggled(),
  'tab continuation line': () => head('GET', ['X-A: a', '\tb']) + smuggled(),
  'bare LF line endings': () =>
    `GET http://${hostOf()}/first HTTP/1.1\nHost: ${hostOf()}\nContent-Length: 0\n\n${smuggled()}`,
  'bare CR in a header value': () => head('GET', ['X-A: a\rContent-Length: 40']) + smuggled(),
  'NUL in a header value': () => head('GET', ['X-A: a\u0000b']) + smuggled(),
  'space before the colon': () => head('POST', ['Transfer-Encoding : chunked']) + chunk(smuggled()),
  'invalid header name': () => head('GET', ['X A: b']) + smuggled(),
  'two Host headers': () => head('GET', ['Host: other.test']) + smuggled(),
  'content on TRACE': () => head('TRACE', [`Content-Length: ${smuggled().length}`]) + smuggled(),
};

describe('request smuggling', () => {
  it.each(Object.keys(attacks))('%s: refused with 400, nothing reaches the upstream', async (name) => {
    const { port, events } = await startProxy();
    const reply = await rawExchange(port, (attacks[name] as () => string)());
    expect(statusesIn(reply), reply).toEqual([400]);
    if (!name.includes('HEAD')) expect(reply).toMatch(/cowork-vm egress proxy: refused: /);
    expect(upstream.seen).toEqual([]);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ decision: 'deny', stage: 'invalid', status: 400, bytesOut: 0 });
    expect(events[0]?.reason.length).toBeGreaterThan(10);
  });

  it('a smuggled request inside a properly framed body stays a body', async () => {
    const { port } = await startProxy();
    const body = smuggled();
    const bytes =
      head('POST', [`Content-Length: ${body.length}`]) +
      body +
      head('POST', ['Transfer-Encoding: chunked', 'Connection: close']) +
      chunk(body);
    const reply = await rawExchange(port, bytes);
    expect(statusesIn(reply)).toEqual([200, 200]);
    expect(upstream.seen.map((s) => [s.method, s.url, s.body])).toEqual([
      ['POST', '/first', body],
      ['POST', '/first', body],
    ]);
    // Re-framed from what the proxy parsed: a length for the first, chunked for the second.
    expect(upstream.seen[0]?.headers['content-length']).toBe(String(body.length));
    expect(upstream.seen[1]?.headers['transfer-encoding']).toBe('chunked');
  });

  it('a GET with a plain Content-Length body is forwarded framed, as one request', async () => {
    const { port } = await startProxy();
    const reply = await rawExchange(
      port,
      `${head('GET', [`Content-Length: ${smuggled().length}`, 'Connection: close'])}${smuggled()}`,
    );
    expect(statusesIn(reply)).toEqual([200]);
    expect(upstream.seen).toHaveLength(1);
    expect(upstream.seen[0]?.body).toBe(smuggled());
  });

  it('the framing check refuses every attack above on its own (parser-independent)', () => {
    const cases: [string, string, string[]][] = [
      ['GET', '1.1', ['Connection', 'content-length', 'Content-Length', '5']],
      ['GET', '1.1', ['Transfer-Encoding', 'chunked']],
      ['POST', '1.1', ['Content-Length', '1', 'Transfer-Encoding', 'chunked']],
      ['POST', '1.1', ['Content-Length', '1', 'content-length', '1']],
      ['POST', '1.1', ['Content-Length', '1 ,1']],
      ['POST', '1.1', ['Transfer-Encoding', 'chunked, gzip']],
      ['POST', '1.0', ['Transfer-Encoding', 'chunked']],
      ['GET', '1.1', ['X-A', 'a\r\n b']],
      ['GET', '1.1', ['X A', 'b']],
      ['GET', '1.1', ['Host', 'a', 'host', 'b']],
      ['POST', '1.1', ['Connection', 'close, Transfer-Encoding', 'Transfer-Encoding', 'chunked']],
    ];
    for (const [method, version, raw] of cases)
      expect(checkRequestFraming(method, version, raw).ok, JSON.stringify(raw)).toBe(false);
    expect(checkRequestFraming('POST', '1.1', ['Transfer-Encoding', 'Chunked'])).toEqual({
      ok: true,
      body: { kind: 'chunked' },
    });
    expect(checkRequestFraming('GET', '1.1', ['Host', 'a'])).toEqual({ ok: true, body: { kind: 'none' } });
  });
});

describe('pipelining', () => {
  it('pipelined plain requests are each forwarded once and answered in order', async () => {
    const { port } = await startProxy();
    const paths = ['/a', '/b', '/c', '/d'];
    const bytes = paths
      .map(
        (p, i) =>
          `GET http://${hostOf()}${p} HTTP/1.1\r\nHost: x\r\n${i === paths.length - 1 ? 'Connection: close\r\n' : ''}\r\n`,
      )
      .join('');
    const reply = await rawExchange(port, bytes);
    expect([...reply.matchAll(/reply to GET (\S+)/g)].map((m) => m[1])).toEqual(paths);
    expect(upstream.seen.map((s) => s.url)).toEqual(paths);
  });

  it('thousands of requests in one write cost a bounded amount of work', async () => {
    const { port, events } = await startProxy();
    const bytes = `GET http://${hostOf()}/many HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(2000);
    const reply = await rawExchange(port, bytes);
    const statuses = statusesIn(reply);
    expect(statuses.at(-1)).toBe(503);
    expect(statuses.length).toBeLessThanOrEqual(33);
    expect(upstream.seen.length).toBeLessThanOrEqual(32);
    expect(reply).toContain('more than 32 pipelined requests');
    expect(events.filter((e) => e.stage === 'limit')).toHaveLength(1);
  });

  it('an HTTP version other than 1.0 or 1.1 is refused', () => {
    expect(checkRequestFraming('GET', '2.0', ['Host', 'a'])).toMatchObject({ ok: false });
  });
});

describe('response desync', () => {
  it("a second client never receives a response meant for another client's connection", async () => {
    // An upstream that answers /double with two responses: a proxy that pooled upstream sockets
    // across clients would hand the extra one to whoever asked next.
    let upstreamConnections = 0;
    const doubler = net.createServer((sock) => {
      upstreamConnections += 1;
      let buf = '';
      sock.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
          const path = /^GET (\S+)/.exec(buf)?.[1] ?? '?';
          buf = buf.slice(end + 4);
          const answer = (body: string) => `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
          sock.write(path === '/double' ? answer('for A') + answer('SMUGGLED') : answer(`for ${path}`));
        }
      });
      sock.on('error', () => sock.destroy());
    });
    await listen(doubler);
    const dport = (doubler.address() as net.AddressInfo).port;
    try {
      const { port } = await startProxy({ rules: { allow: [`127.0.0.1:${dport}`] } });
      const a = net.connect(port, '127.0.0.1');
      let aReply = '';
      a.on('data', (d: Buffer) => {
        aReply += d.toString('latin1');
      });
      a.write(`GET http://127.0.0.1:${dport}/double HTTP/1.1\r\nHost: x\r\n\r\n`);
      for (let i = 0; i < 500 && !aReply.includes('for A'); i++) await new Promise((r) => setTimeout(r, 10));
      expect(aReply).toContain('for A');
      // Client B, on its own connection, while A's connection (and its upstream) is still open.
      const bReply = await rawExchange(
        port,
        `GET http://127.0.0.1:${dport}/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      );
      expect(bReply).toContain('for /b');
      expect(bReply).not.toContain('SMUGGLED');
      expect(upstreamConnections).toBe(2);
      a.destroy();
    } finally {
      await closeServer(doubler);
    }
  });

  it('the reported attack: a smuggled request cannot put its response in front of another client', async () => {
    const { port, events } = await startProxy();
    const a = await rawExchange(
      port,
      head('GET', ['Connection: content-length', `Content-Length: ${smuggled().length}`]) + smuggled(),
    );
    const b = await rawExchange(port, head('GET', ['Connection: close']));
    expect(statusesIn(a)).toEqual([400]);
    expect(b).toContain('reply to GET /first');
    expect(b).not.toContain('/smuggled');
    expect(upstream.seen.map((s) => s.url)).toEqual(['/first']);
    expect(events[0]).toMatchObject({ decision: 'deny', stage: 'invalid', method: 'GET', host: 'site.test' });
    expect(events[0]?.reason).toContain('Connection header names content-length');
  });

  it('after a refused request the connection is closed, so nothing more is read from it', async () => {
    const { port } = await startProxy();
    const reply = await rawExchange(
      port,
      `${head('GET', ['Transfer-Encoding: chunked'])}0\r\n\r\n${head('GET', ['Connection: close'])}`,
    );
    expect(statusesIn(reply)).toEqual([400]);
    expect(upstream.seen).toEqual([]);
  });
});
