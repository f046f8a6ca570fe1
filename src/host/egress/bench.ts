import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { CoworkError } from '../errors.js';
import { EgressProxy } from './proxy.js';
import { egressRelayCommand } from './relay.js';

/**
 * Egress proxy benchmark (wired into `npm run bench`): the cost the proxy adds per request and
 * to a 16 MiB download, against the same fetch made directly on loopback, reported as ratios.
 * Everything runs on 127.0.0.1; the proxy is allowed to reach the origin by an IP rule. Client,
 * proxy and origin share this one process's event loop, so the ratios are pessimistic.
 */
const DOWNLOAD_BYTES = 16 * 1024 * 1024;
const SMALL_REQUESTS = 200;
const DOWNLOADS = 5;
const RELAYED = 10;

interface Via {
  /** Options that send `path` on the origin either directly or through the proxy. */
  request(path: string): http.RequestOptions;
}

function fetchBytes(agent: http.Agent, opts: http.RequestOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ ...opts, agent }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => {
        n += c.length;
      });
      res.on('end', () =>
        res.statusCode === 200
          ? resolve(n)
          : reject(new CoworkError('internal', `egress bench: HTTP ${res.statusCode}`)),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function timeRuns(via: Via, path: string, runs: number): Promise<{ totalMs: number; bytes: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    await fetchBytes(agent, via.request(path)); // warm the connection (and the proxy's pool)
    let bytes = 0;
    const t0 = performance.now();
    for (let i = 0; i < runs; i++) bytes += await fetchBytes(agent, via.request(path));
    return { totalMs: performance.now() - t0, bytes };
  } finally {
    agent.destroy();
  }
}

function startOrigin(): Promise<http.Server> {
  const big = Buffer.alloc(DOWNLOAD_BYTES, 0x61);
  const server = http.createServer((req, res) => {
    const body = req.url === '/big' ? big : Buffer.from('ok\n');
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(body);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/**
 * One request over a fresh connection handed to the guestfwd relay the way libslirp hands it
 * (the connection as fds 0-2 of a new process): what every guest connection costs under QEMU.
 */
async function relayedRequest(proxyPort: number, originPort: number): Promise<void> {
  const acceptor = net.createServer();
  await new Promise<void>((r) => acceptor.listen(0, '127.0.0.1', () => r()));
  try {
    const accepted = new Promise<net.Socket>((r) => acceptor.once('connection', r));
    const guest = net.connect((acceptor.address() as net.AddressInfo).port, '127.0.0.1');
    const far = await accepted;
    const argv = [...egressRelayCommand(proxyPort).matchAll(/'([^']*)'|(\S+)/g)].map(
      (m) => m[1] ?? m[2] ?? '',
    );
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: [far, far, far] });
    far.destroy();
    const exited = new Promise((r) => child.once('exit', r));
    let reply = '';
    guest.on('data', (d: Buffer) => {
      reply += d.toString('latin1');
    });
    const ended = new Promise((r) => guest.once('end', r));
    guest.write(`GET http://127.0.0.1:${originPort}/small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    await ended;
    guest.end();
    await exited;
    if (!reply.startsWith('HTTP/1.1 200')) {
      throw new CoworkError(
        'internal',
        `egress bench: the relay returned ${JSON.stringify(reply.slice(0, 40))}`,
      );
    }
  } finally {
    await new Promise<void>((r) => acceptor.close(() => r()));
  }
}

export async function benchEgress(): Promise<{ lines: string[] }> {
  const origin = await startOrigin();
  const originPort = (origin.address() as net.AddressInfo).port;
  const proxy = new EgressProxy({ rules: { allow: [`127.0.0.1:${originPort}`] } });
  try {
    const { port: proxyPort } = await proxy.start();
    const direct: Via = { request: (path) => ({ host: '127.0.0.1', port: originPort, path }) };
    const viaProxy: Via = {
      request: (path) => ({
        host: '127.0.0.1',
        port: proxyPort,
        path: `http://127.0.0.1:${originPort}${path}`,
        headers: { host: `127.0.0.1:${originPort}` },
      }),
    };
    const smallDirect = await timeRuns(direct, '/small', SMALL_REQUESTS);
    const smallProxy = await timeRuns(viaProxy, '/small', SMALL_REQUESTS);
    const bigDirect = await timeRuns(direct, '/big', DOWNLOADS);
    const bigProxy = await timeRuns(viaProxy, '/big', DOWNLOADS);
    const r0 = performance.now();
    for (let i = 0; i < RELAYED; i++) await relayedRequest(proxyPort, originPort);
    const relayMs = (performance.now() - r0) / RELAYED;
    const perReq = (r: { totalMs: number }) => r.totalMs / SMALL_REQUESTS;
    const mibps = (r: { totalMs: number; bytes: number }) => r.bytes / (1024 * 1024) / (r.totalMs / 1000);
    const f = (n: number, d = 2) => n.toFixed(d);
    return {
      lines: [
        `egress proxy: per request ${f(perReq(smallProxy))} ms via proxy vs ${f(perReq(smallDirect))} ms direct ` +
          `(+${f(perReq(smallProxy) - perReq(smallDirect))} ms, ratio ${f(perReq(smallProxy) / perReq(smallDirect))}x, ` +
          `${SMALL_REQUESTS} keep-alive requests)`,
        `egress proxy: 16 MiB download ${f(mibps(bigProxy), 0)} MiB/s via proxy vs ${f(mibps(bigDirect), 0)} MiB/s direct ` +
          `(throughput ratio ${f(mibps(bigProxy) / mibps(bigDirect))}, ${DOWNLOADS} downloads)`,
        `egress proxy: new guest connection through the QEMU guestfwd relay ${f(relayMs, 1)} ms per request ` +
          `(ratio ${f(relayMs / perReq(smallDirect), 0)}x a keep-alive direct request; one relay process each, ${RELAYED} runs)`,
      ],
    };
  } finally {
    await proxy.close();
    await new Promise<void>((r) => origin.close(() => r()));
  }
}
