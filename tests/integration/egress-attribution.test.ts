import http from 'node:http';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ApprovalRequest, Verdict } from '../../src/host/approvals/types.js';
import {
  type EgressEvent,
  EgressEventSchema,
  EgressProxy,
  type EgressProxyOptions,
} from '../../src/host/egress/index.js';
import { TaskScopes } from '../../src/host/sandbox/task-scope.js';
import { closeServer, listen, ScriptedBroker } from '../helpers/egress.js';

/**
 * Per-task attribution through the real proxy on loopback: each task's commands carry their own
 * proxy credentials (TaskScope.proxyEnv), and the proxy decides every request for the task
 * those credentials prove — or for no task. Names resolve to the local origin only.
 */

let origin: net.Server;
let originPort: number;
const originSockets = new Set<net.Socket>();
/** Everything the origin was sent, to check that no credentials travel past the proxy. */
let originBytes = '';
const proxies: EgressProxy[] = [];

beforeAll(async () => {
  // Answers HTTP, and accepts tunnels (a CONNECT test only needs the 200).
  origin = net.createServer((s) => {
    originSockets.add(s);
    s.on('close', () => originSockets.delete(s));
    s.on('error', () => s.destroy());
    s.on('data', (d: Buffer) => {
      originBytes += d.toString('latin1');
    });
    s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'));
  });
  await listen(origin);
  originPort = (origin.address() as net.AddressInfo).port;
});
afterAll(async () => {
  for (const s of originSockets) s.destroy();
  await closeServer(origin);
});
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

async function startProxy(opts: EgressProxyOptions) {
  const events: EgressEvent[] = [];
  const proxy = new EgressProxy({
    testResolve: { 'ask.test': '127.0.0.1', 'site.test': '127.0.0.1' },
    allowTestResolve: true,
    dial: ({ port }) => net.connect(port === 80 || port === 443 ? originPort : port, '127.0.0.1'),
    onEvent: (e) => events.push(EgressEventSchema.parse(e)),
    ...opts,
  });
  proxies.push(proxy);
  const { port } = await proxy.start();
  const scopes = new TaskScopes({ attribution: proxy.tasks, proxyUrl: 'http://127.0.0.1:3128' });
  return { proxy, port, events, scopes };
}

/** Proxy-Authorization from a task's HTTP_PROXY, the way curl builds it from the URL. */
function authOf(env: Record<string, string>): string {
  const u = new URL(env.HTTP_PROXY ?? '');
  return `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`;
}

function get(proxyPort: number, url: string, auth?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: proxyPort,
        path: url,
        agent: false,
        headers: auth ? { 'proxy-authorization': auth } : {},
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** CONNECT with optional credentials; resolves the status and closes the socket. */
function connect(proxyPort: number, authority: string, auth?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect(proxyPort, '127.0.0.1');
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(buf);
      if (m && buf.includes('\r\n\r\n')) {
        s.destroy();
        resolve(Number(m[1]));
      }
    });
    s.on('error', reject);
    s.on('end', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(buf)?.[1] ?? 0)));
    const header = auth ? `Proxy-Authorization: ${auth}\r\n` : '';
    s.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${header}\r\n`);
  });
}

/** Waits (event loop turns, bounded) until a tunnel's close has been recorded. */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 10_000 && !done(); i++) await new Promise((r) => setImmediate(r));
  expect(done()).toBe(true);
}

describe('egress attributed to the task whose credentials the request carries', () => {
  it('a host approved for task A is not open to task B, to no task, or to A once A has ended', async () => {
    const asked: (string | undefined)[] = [];
    let taskA = '';
    // The user approves for the task when A asks; everyone else is refused.
    const broker = new ScriptedBroker((req: ApprovalRequest): Verdict => {
      asked.push(req.taskId);
      return req.taskId === taskA
        ? { kind: 'approve-task', by: 'terminal' }
        : { kind: 'deny', by: 'terminal', message: 'not for you' };
    });
    const { proxy, port, events, scopes } = await startProxy({ rules: { ask: true }, broker });
    const a = scopes.open('t-aaaa');
    const b = scopes.open('t-bbbb');
    taskA = a.taskId;
    const authA = authOf(a.proxyEnv());
    const authB = authOf(b.proxyEnv());
    expect(authA).not.toBe(authB);

    expect(await get(port, 'http://ask.test/', authA)).toBe(200); // asked, approved for A
    expect(await get(port, 'http://ask.test/again', authA)).toBe(200); // A's grant, not asked
    expect(await connect(port, 'ask.test:443', authA)).toBe(200); // the grant holds for CONNECT too
    expect(await get(port, 'http://ask.test/', authB)).toBe(403); // B is asked, and refused
    expect(await get(port, 'http://ask.test/')).toBe(403); // no credentials: no task, asked
    expect(await connect(port, 'ask.test:443')).toBe(403);
    // A's user name with a wrong secret proves nothing: no task.
    const forged = `Basic ${Buffer.from(`${a.credential?.username}:${'x'.repeat(32)}`).toString('base64')}`;
    expect(await get(port, 'http://ask.test/', forged)).toBe(403);
    expect(asked).toEqual([taskA, b.taskId, undefined, undefined, undefined]);
    expect([...proxy.approvedHosts(a.taskId)]).toEqual(['ask.test']);
    expect(proxy.approvedHosts(b.taskId).size).toBe(0);
    expect(proxy.approvedHosts(null).size).toBe(0);

    // A ends: its grant and its credentials go with it.
    scopes.close(a.taskId);
    expect(proxy.approvedHosts(a.taskId).size).toBe(0);
    expect(await get(port, 'http://ask.test/', authA)).toBe(403);
    expect(asked.at(-1)).toBeUndefined(); // asked as no task's request, and refused
    expect(await connect(port, 'ask.test:443', authA)).toBe(403);

    // A tunnel is recorded when it closes, so events are compared without their order.
    const rows = (list: unknown[][]) => list.map((r) => JSON.stringify(r)).sort();
    await until(() => events.length === 9);
    expect(rows(events.map((e) => [e.taskId, e.decision, e.stage]))).toEqual(
      rows([
        [taskA, 'allow', 'approval'],
        [taskA, 'allow', 'task'],
        [taskA, 'allow', 'task'],
        [b.taskId, 'deny', 'approval'],
        [null, 'deny', 'approval'],
        [null, 'deny', 'approval'],
        [null, 'deny', 'approval'],
        [null, 'deny', 'approval'],
        [null, 'deny', 'approval'],
      ]),
    );
    scopes.disposeAll();
    expect(proxy.tasks.live).toBe(0);
    // The credentials end at the proxy: the origin never sees them.
    expect(originBytes).toContain('GET /again');
    for (const secret of [a.credential?.password, b.credential?.password, authA.slice(6), 'task-']) {
      expect(originBytes).not.toContain(secret);
    }
    expect(originBytes.toLowerCase()).not.toContain('proxy-authorization');
  });

  it('concurrent requests of two tasks are each recorded for their own task', async () => {
    const { port, events, scopes } = await startProxy({ rules: { allow: ['site.test'] } });
    const a = scopes.open('t-conc-a');
    const b = scopes.open('t-conc-b');
    const [authA, authB] = [authOf(a.proxyEnv()), authOf(b.proxyEnv())];
    const jobs: Promise<number>[] = [];
    for (let i = 0; i < 10; i++) {
      jobs.push(get(port, `http://site.test/a${i}`, authA));
      jobs.push(connect(port, 'site.test:443', authB));
      jobs.push(get(port, `http://site.test/none${i}`));
    }
    expect(new Set(await Promise.all(jobs))).toEqual(new Set([200]));
    const by = (url: string) => events.filter((e) => (e.url ?? '').includes(url));
    expect(new Set(by('/a').map((e) => e.taskId))).toEqual(new Set([a.taskId]));
    expect(new Set(by('/none').map((e) => e.taskId))).toEqual(new Set([null]));
    await until(() => events.filter((e) => e.kind === 'connect').length === 10);
    const tunnels = events.filter((e) => e.kind === 'connect');
    expect(tunnels).toHaveLength(10);
    expect(new Set(tunnels.map((e) => e.taskId))).toEqual(new Set([b.taskId]));
  });

  it('an approve-task verdict for no task is kept nowhere: the next request asks again', async () => {
    const broker = new ScriptedBroker(() => ({ kind: 'approve-task', by: 'terminal' }));
    const { proxy, port } = await startProxy({ rules: { ask: true }, broker });
    expect(await get(port, 'http://ask.test/')).toBe(200);
    expect(await get(port, 'http://ask.test/')).toBe(200);
    expect(broker.asked).toHaveLength(2);
    expect(proxy.approvedHosts(null).size).toBe(0);
  });
});

describe('a port-less allow entry', () => {
  it('means 443 for CONNECT and 80 for plain HTTP, never CONNECT to 80', async () => {
    const { port, events } = await startProxy({ rules: { allow: ['site.test'] } });
    expect(await connect(port, 'site.test:443')).toBe(200);
    expect(await get(port, 'http://site.test/')).toBe(200);
    expect(await connect(port, 'site.test:80')).toBe(403);
    expect(await get(port, 'http://site.test:443/')).toBe(403);
    await until(() => events.length === 4);
    const rows = events.map((e) => JSON.stringify([e.kind, e.port, e.decision, e.stage])).sort();
    expect(rows).toEqual(
      [
        ['connect', 443, 'allow', 'allow-list'],
        ['http', 80, 'allow', 'allow-list'],
        ['connect', 80, 'deny', 'port'],
        ['http', 443, 'deny', 'port'],
      ]
        .map((r) => JSON.stringify(r))
        .sort(),
    );
  });

  it('a rule that names port 80 allows CONNECT to it', async () => {
    const { port } = await startProxy({ rules: { allow: ['site.test:80'] } });
    expect(await connect(port, 'site.test:80')).toBe(200);
    expect(await connect(port, 'site.test:443')).toBe(403);
  });
});
