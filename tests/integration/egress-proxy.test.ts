import { mkdtempSync, rmSync } from 'node:fs';
import type http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ApprovalRequest, Verdict } from '../../src/host/approvals/types.js';
import {
  type EgressEvent,
  EgressEventSchema,
  EgressProxy,
  type EgressProxyOptions,
} from '../../src/host/egress/index.js';
import { CoworkError } from '../../src/host/errors.js';
import { Timeline } from '../../src/host/timeline/index.js';
import {
  closeServer,
  connectVia,
  proxyRequest,
  ScriptedBroker,
  type SeenRequest,
  selfSignedCert,
  startOrigin,
  startTlsEcho,
  tlsOverTunnel,
} from '../helpers/egress.js';
import { waitFor } from '../helpers/wait.js';

// The proxy for real, on loopback: a local origin and a local TLS server reached under `.test`
// names through the test resolver. Every event is checked against the proxy's event schema and
// recorded in a real Timeline (SQLite file), whose strict schema must accept it.

let origin: { server: http.Server; port: number; seen: SeenRequest[] };
let tlsEcho: Awaited<ReturnType<typeof startTlsEcho>>;
let cert: { key: Buffer; cert: Buffer };
const proxies: EgressProxy[] = [];
const recordErrors: CoworkError[] = [];
let timeline: Timeline;
let timelineDir: string;

beforeAll(async () => {
  origin = await startOrigin();
  cert = selfSignedCert('secure.test');
  tlsEcho = await startTlsEcho(cert);
  timelineDir = mkdtempSync(join(tmpdir(), 'egress-timeline-'));
  timeline = Timeline.open(join(timelineDir, 'timeline.db'));
});
afterAll(async () => {
  await closeServer(origin.server);
  await closeServer(tlsEcho.server);
  timeline.close();
  rmSync(timelineDir, { recursive: true, force: true });
});
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  origin.seen.length = 0;
  expect(recordErrors.splice(0)).toEqual([]);
});

const newTask = () => timeline.createTask({ title: 'egress test', context: 'agent', origin: 'test' }).id;

async function startProxy(opts: Partial<EgressProxyOptions> = {}) {
  const events: EgressEvent[] = [];
  const proxy = new EgressProxy({
    testResolve: { 'site.test': '127.0.0.1', 'secure.test': '127.0.0.1', 'ask.test': '127.0.0.1' },
    allowTestResolve: true,
    onEvent: (e) => events.push(EgressEventSchema.parse(e)),
    timeline,
    onRecordError: (err) => recordErrors.push(err),
    ...opts,
  });
  proxies.push(proxy);
  const { port } = await proxy.start();
  // Events are recorded when a connection finishes; wait for the n-th one.
  const eventAt = (n: number): Promise<EgressEvent> =>
    waitFor(() => events[n], `egress event #${n}`, {
      timeoutMs: 15_000,
      detail: () => `got ${JSON.stringify(events)}`,
    });
  return { proxy, port, events, eventAt };
}

describe('allowed traffic', () => {
  it('forwards plain HTTP to an allowed host, stripping hop-by-hop and proxy headers', async () => {
    const { port, eventAt } = await startProxy({ rules: { allow: [`site.test:${origin.port}`] } });
    const res = await proxyRequest(port, `http://site.test:${origin.port}/hello?q=1`, {
      method: 'POST',
      headers: {
        'proxy-authorization': 'Basic c2VjcmV0',
        'proxy-connection': 'keep-alive',
        connection: 'keep-alive, x-hop',
        'x-hop': 'drop me',
        'x-keep': 'kept',
        host: 'internal.invalid',
      },
      body: 'payload',
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ method: 'POST', url: '/hello?q=1', body: 'payload' });
    expect(res.headers['x-origin']).toBe('yes');
    expect(res.headers['x-origin-hop']).toBeUndefined();
    const seen = origin.seen[0]!;
    expect(seen.headers.host).toBe(`site.test:${origin.port}`);
    expect(seen.headers['x-keep']).toBe('kept');
    for (const h of ['proxy-authorization', 'proxy-connection', 'x-hop'])
      expect(seen.headers[h]).toBeUndefined();

    const e = await eventAt(0);
    expect(e).toMatchObject({
      kind: 'http',
      method: 'POST',
      host: 'site.test',
      port: origin.port,
      url: `http://site.test:${origin.port}/hello`,
      decision: 'allow',
      stage: 'allow-list',
      rule: `site.test:${origin.port}`,
      address: '127.0.0.1',
      status: 200,
      bytesOut: 7,
    });
    expect(e.bytesIn).toBe(Buffer.byteLength(res.body));
    const stored = timeline.query({ types: ['egress.request'] }).at(-1);
    expect(stored).toMatchObject({
      taskId: null,
      type: 'egress.request',
      data: { decision: 'allow', status: 200 },
    });
    expect(stored?.data).toMatchObject({
      host: 'site.test',
      bytesOut: 7,
      kind: 'http',
      stage: 'allow-list',
      address: '127.0.0.1',
    });
  });

  it('opens a CONNECT tunnel to an allowed host and relays TLS untouched', async () => {
    const { port, eventAt } = await startProxy({ rules: { allow: [`secure.test:${tlsEcho.port}`] } });
    const tunnel = await connectVia(port, `secure.test:${tlsEcho.port}`);
    expect(tunnel.status).toBe(200);
    const reply = await tlsOverTunnel(tunnel.socket, 'secure.test', cert.cert, 'ping');
    expect(reply).toBe('echo:ping');
    const e = await eventAt(0);
    expect(e).toMatchObject({ kind: 'connect', host: 'secure.test', decision: 'allow', status: 200 });
    expect(e.bytesIn).toBeGreaterThan(100); // the server's TLS handshake came back through
    expect(e.bytesOut).toBeGreaterThan(100);
  });

  it('reaches an IP only because a rule names that IP literally', async () => {
    const { port } = await startProxy({ rules: { allow: [`127.0.0.1:${origin.port}`] } });
    expect((await proxyRequest(port, `http://127.0.0.1:${origin.port}/ip`)).status).toBe(200);
    expect((await proxyRequest(port, `http://2130706433:${origin.port}/decimal`)).status).toBe(200);
    expect(origin.seen.map((s) => s.url)).toEqual(['/ip', '/decimal']);
  });
});

describe('denied traffic', () => {
  it('answers 403 with a policy explanation and records the denial', async () => {
    const { port, eventAt } = await startProxy({ rules: { allow: ['site.test'] } });
    const res = await proxyRequest(port, 'http://other.test/x');
    expect(res.status).toBe(403);
    expect(res.headers['x-cowork-egress']).toBe('denied');
    expect(res.body).toContain('Blocked by the cowork-vm egress policy');
    expect(res.body).toContain('other.test is not on the egress allow list');
    expect(res.body).toContain('[egress] allow = ["other.test"]');
    expect(await eventAt(0)).toMatchObject({
      decision: 'deny',
      stage: 'default',
      host: 'other.test',
      status: 403,
    });
    expect(origin.seen).toHaveLength(0);
  });

  it('denies everything with no rules at all', async () => {
    const { port } = await startProxy({});
    expect((await proxyRequest(port, `http://site.test:${origin.port}/`)).status).toBe(403);
    expect((await connectVia(port, `secure.test:${tlsEcho.port}`)).status).toBe(403);
    expect(origin.seen).toHaveLength(0);
  });

  it('refuses a CONNECT with a complete 403 before any tunnel exists', async () => {
    const before = tlsEcho.connections();
    const { port, eventAt } = await startProxy({ rules: { allow: ['site.test'] } });
    const res = await connectVia(port, `secure.test:${tlsEcho.port}`);
    expect(res.status).toBe(403);
    expect(res.head).toContain('Content-Length');
    expect(res.body).toContain('egress policy');
    expect(res.body).toContain(`[egress] allow = ["secure.test:${tlsEcho.port}"]`);
    expect(await eventAt(0)).toMatchObject({ kind: 'connect', decision: 'deny', stage: 'port' });
    expect(tlsEcho.connections()).toBe(before);
  });

  it('lets the deny list win over an allow rule', async () => {
    const { port, eventAt } = await startProxy({
      rules: { allow: ['.test:' + origin.port], deny: ['site.test'] },
    });
    const res = await proxyRequest(port, `http://site.test:${origin.port}/`);
    expect(res.status).toBe(403);
    expect(res.body).toContain('remove "site.test" from [egress] deny');
    expect(await eventAt(0)).toMatchObject({ stage: 'deny-list', rule: 'site.test' });
  });

  it('refuses ports other than 80/443 unless a rule names the port, even with ask on', async () => {
    const broker = new ScriptedBroker(() => ({ kind: 'approve-once', by: 'test' }));
    const { port } = await startProxy({ rules: { allow: ['site.test'], ask: true }, broker });
    const res = await proxyRequest(port, `http://site.test:${origin.port}/`);
    expect(res.status).toBe(403);
    expect(res.body).toContain(`port ${origin.port} is not allowed`);
    expect(broker.asked).toHaveLength(0);
    expect((await connectVia(port, 'site.test:22')).status).toBe(403);
  });

  it('dials port 80 for a port-less allow rule (seen through the dialer)', async () => {
    const dialled: string[] = [];
    const { port } = await startProxy({
      rules: { allow: ['site.test'] },
      dial: ({ address, port: p }) => {
        dialled.push(`${address}:${p}`);
        return net.connect(origin.port, '127.0.0.1');
      },
    });
    expect((await proxyRequest(port, 'http://site.test/port80')).status).toBe(200);
    expect(dialled).toEqual(['127.0.0.1:80']);
  });

  it('rejects requests that are not proxy requests', async () => {
    const { port } = await startProxy({ rules: { allowAll: true } });
    const res = await proxyRequest(port, '/direct');
    expect(res.status).toBe(400);
    expect(res.body).toContain('absolute-form');
    expect((await proxyRequest(port, 'https://site.test/')).body).toContain('CONNECT');
    expect((await connectVia(port, 'site.test')).status).toBe(400); // no port: not a valid CONNECT target
  });
});

describe('asking through the ApprovalBroker', () => {
  const url = () => `http://ask.test/`;
  const viaOrigin = () => () => net.connect(origin.port, '127.0.0.1');

  it('an approve-once verdict lets that request through and the next one asks again', async () => {
    const broker = new ScriptedBroker(() => ({ kind: 'approve-once', by: 'device:test' }));
    const { port, proxy, eventAt } = await startProxy({ rules: { ask: true }, broker, dial: viaOrigin() });
    const task = newTask();
    // The task's own proxy credentials are what attribute a request to it.
    const { username, password } = proxy.tasks.issue({ taskId: task, hosts: new Set() });
    const headers = {
      'proxy-authorization': `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`,
    };
    expect((await proxyRequest(port, url(), { headers })).status).toBe(200);
    expect((await proxyRequest(port, url(), { headers })).status).toBe(200);
    expect(broker.asked).toHaveLength(2);
    expect(broker.asked[0]).toMatchObject<Partial<ApprovalRequest>>({
      taskId: task,
      tool: 'egress',
      command: 'GET http://ask.test/',
      risk: 'network',
    });
    expect(await eventAt(0)).toMatchObject({ taskId: task, stage: 'approval', approvedBy: 'device:test' });
    await eventAt(1);
    expect(timeline.query({ taskId: task, types: ['egress.request'] })).toHaveLength(2);
  });

  // approve-task and per-task attribution: tests/integration/egress-attribution.test.ts.

  it('a deny verdict is a 403 carrying the user message', async () => {
    const broker = new ScriptedBroker(
      (): Verdict => ({ kind: 'deny', by: 'telegram:42', message: 'not that site' }),
    );
    const { port, eventAt } = await startProxy({ rules: { ask: true }, broker, dial: viaOrigin() });
    const res = await proxyRequest(port, url());
    expect(res.status).toBe(403);
    expect(res.body).toContain('not that site');
    expect(res.body).toContain('[egress] allow = ["ask.test"]');
    expect(await eventAt(0)).toMatchObject({ decision: 'deny', stage: 'approval' });
    expect(origin.seen).toHaveLength(0);
  });

  it('concurrent requests for one host share one question', async () => {
    let release: (v: Verdict) => void = () => undefined;
    const broker = new ScriptedBroker(() => new Promise<Verdict>((r) => (release = r)));
    const { port, proxy } = await startProxy({ rules: { ask: true }, broker, dial: viaOrigin() });
    const all = Promise.all([1, 2, 3].map(() => proxyRequest(port, url())));
    await waitFor(() => proxy.waitingForApproval >= 3, 'three requests waiting for the answer');
    release({ kind: 'approve-once', by: 'test' });
    expect((await all).map((r) => r.status)).toEqual([200, 200, 200]);
    expect(broker.asked).toHaveLength(1);
  });

  it('a client that leaves during the approval gets nothing dialled on its behalf', async () => {
    let release: (v: Verdict) => void = () => undefined;
    const broker = new ScriptedBroker(() => new Promise<Verdict>((r) => (release = r)));
    const dialled: number[] = [];
    const { port, proxy, eventAt } = await startProxy({
      rules: { ask: true },
      broker,
      dial: ({ port: p }) => {
        dialled.push(p);
        return net.connect(origin.port, '127.0.0.1');
      },
    });
    for (const request of [
      'GET http://ask.test/ HTTP/1.1\r\nHost: ask.test\r\n\r\n',
      'CONNECT ask.test:443 HTTP/1.1\r\n\r\n',
    ]) {
      const before = proxy.waitingForApproval;
      const client = net.connect(port, '127.0.0.1', () => client.write(request));
      await waitFor(() => proxy.waitingForApproval > before, 'the request to wait for the answer');
      client.destroy();
      await new Promise((r) => setTimeout(r, 50)); // let the proxy see the close
      release({ kind: 'approve-once', by: 'test' });
      await waitFor(() => proxy.waitingForApproval === 0, 'the answer to be applied');
    }
    expect(await eventAt(0)).toMatchObject({ kind: 'http', error: expect.stringContaining('client closed') });
    expect(await eventAt(1)).toMatchObject({
      kind: 'connect',
      error: expect.stringContaining('client closed'),
    });
    expect(dialled).toEqual([]);
  });

  it('ask without a broker is a denial', async () => {
    const { port } = await startProxy({ rules: { ask: true }, dial: viaOrigin() });
    const res = await proxyRequest(port, url());
    expect(res.status).toBe(403);
    expect(res.body).toContain('no approval frontend');
  });
});

describe('hostile upstreams', () => {
  it('cost one response, never the proxy', async () => {
    const replies = [
      'HTTP/1.1 200 O\u0001K\r\nContent-Length: 2\r\n\r\nok',
      'HTTP/1.1 200 OK\r\nX-Bad: a\u0001b\r\nContent-Length: 2\r\n\r\nok',
      'HTTP/1.1 200 OK\r\nX-Latin: caf\u00e9\r\nContent-Length: 2\r\n\r\nok',
      'HTTP/1.1 999 Weird\r\nContent-Length: 2\r\n\r\nok',
      'garbage\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort',
    ];
    let next = 0;
    const hostile = net.createServer((sock) => {
      const reply = replies[next++] ?? '';
      sock.once('data', () => sock.end(Buffer.from(reply, 'latin1')));
      sock.on('error', () => sock.destroy());
    });
    await new Promise<void>((r) => hostile.listen(0, '127.0.0.1', () => r()));
    const hport = (hostile.address() as net.AddressInfo).port;
    try {
      const { port } = await startProxy({
        rules: { allow: [`127.0.0.1:${hport}`, `site.test:${origin.port}`] },
      });
      for (let i = 0; i < replies.length; i++) {
        const status = await proxyRequest(port, `http://127.0.0.1:${hport}/${i}`).then(
          (r) => r.status,
          () => -1, // the proxy cut a response it had started: the client sees a broken message
        );
        expect([200, 502, 999, -1], replies[i]).toContain(status);
      }
      expect((await proxyRequest(port, `http://site.test:${origin.port}/still-up`)).status).toBe(200);
    } finally {
      await closeServer(hostile);
    }
  });
});

describe('construction and lifecycle', () => {
  it('refuses testResolve without the explicit test flag', () => {
    const make = (extra: Partial<EgressProxyOptions>) => () =>
      new EgressProxy({ testResolve: { 'site.test': '127.0.0.1' }, env: {}, ...extra });
    expect(make({})).toThrow(/testResolve is set but test resolution is not enabled/);
    expect(make({ allowTestResolve: false })).toThrow(CoworkError);
    expect(make({ env: { COWORK_VM_TEST_RESOLVE: '1' } })).not.toThrow();
  });

  it('listens on loopback only', () => {
    expect(() => new EgressProxy({ listenHost: '0.0.0.0' })).toThrow(/loopback only/);
  });

  it('close() tears down open tunnels', async () => {
    const { port, proxy } = await startProxy({ rules: { allow: [`secure.test:${tlsEcho.port}`] } });
    const tunnel = await connectVia(port, `secure.test:${tlsEcho.port}`);
    const closed = new Promise((r) => tunnel.socket.once('close', r));
    await proxy.close();
    await closed;
    expect(tunnel.socket.destroyed).toBe(true);
  });
});
