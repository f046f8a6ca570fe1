import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { CoworkError } from '../errors.js';
import { EgressProxy } from './proxy.js';

/**
 * Egress proxy benchmark (wired into `npm run bench`): the cost the proxy adds per request and
 * to a 16 MiB download, against the same fetch made directly on loopback, reported as ratios;
 * and (benchGuestConnections, with the bench's running guest) what a new guest connection costs.
 * Everything runs on 127.0.0.1; the proxy is allowed to reach the origin by an IP rule. Client,
 * proxy and origin share this one process's event loop, so the ratios are pessimistic.
 */
const DOWNLOAD_BYTES = 16 * 1024 * 1024;
const SMALL_REQUESTS = 200;
const DOWNLOADS = 5;
const GUEST_CONNECTIONS = 50;

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
 * In the guest: `n` fresh TCP connections to the proxy one after another, each carrying one
 * request the proxy answers at once (a denied host: 403, no upstream), timed from connect() to
 * the proxy closing. Two unmeasured warm-up connections first. Prints one ms figure each.
 */
const GUEST_CONNECTIONS_PY = `
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
req = b"GET http://bench.invalid/ HTTP/1.1\\r\\nHost: bench.invalid\\r\\nConnection: close\\r\\n\\r\\n"
out = []
for i in range(n + 2):
    t = time.perf_counter()
    s = socket.create_connection((host, port))
    s.sendall(req)
    buf = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    s.close()
    if not buf.startswith(b"HTTP/1.1 "):
        sys.exit("unexpected reply %r" % buf[:60])
    if i >= 2:
        out.append((time.perf_counter() - t) * 1000)
print(" ".join("%.3f" % x for x in out))
`;

/** The same request on a fresh host loopback connection straight to the proxy; ms. */
async function hostConnection(proxyPort: number): Promise<number> {
  const t = performance.now();
  const sock = net.connect(proxyPort, '127.0.0.1');
  let reply = '';
  sock.on('data', (d: Buffer) => {
    reply += d.toString('latin1');
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.once('close', () => resolve());
    sock.write('GET http://bench.invalid/ HTTP/1.1\r\nHost: bench.invalid\r\nConnection: close\r\n\r\n');
  });
  if (!reply.startsWith('HTTP/1.1 ')) {
    throw new CoworkError(
      'internal',
      `egress bench: the proxy returned ${JSON.stringify(reply.slice(0, 40))}`,
    );
  }
  return performance.now() - t;
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const at = (xs: number[], q: number) =>
  sorted(xs)[Math.min(xs.length - 1, Math.ceil(q * xs.length) - 1)] ?? Number.NaN;

/** A running guest and the proxy it reaches: the sandbox's own (`npm run bench` boots one). */
export interface BenchGuest {
  exec(
    command: string,
    opts: { timeoutMs: number },
  ): Promise<{ exitCode: number | null; stdout: string; stderr: string }>;
  /** The proxy as the guest reaches it (SandboxInfo.guestProxyUrl). */
  guestProxyUrl: string;
  /** The same proxy's loopback port on the host. */
  hostProxyPort: number;
}

/**
 * What a new guest connection to the egress proxy costs, end to end through the real path
 * (under QEMU: the guest's loopback → sshd → the host's SSH session → the proxy), timed in the
 * guest, against the same request on a new host connection straight to the proxy.
 */
export async function benchGuestConnections(guest: BenchGuest): Promise<{ line: string }> {
  const url = new URL(guest.guestProxyUrl);
  const r = await guest.exec(
    `python3 -c '${GUEST_CONNECTIONS_PY}' ${url.hostname} ${url.port} ${GUEST_CONNECTIONS}`,
    {
      timeoutMs: 300_000,
    },
  );
  const inGuest = r.stdout.trim().split(/\s+/).map(Number);
  if (r.exitCode !== 0 || inGuest.length !== GUEST_CONNECTIONS || inGuest.some((x) => !Number.isFinite(x))) {
    throw new CoworkError(
      'internal',
      `egress bench: the guest's connections failed (exit ${r.exitCode}: ${(r.stderr || r.stdout).slice(0, 300)})`,
    );
  }
  await hostConnection(guest.hostProxyPort);
  const onHost: number[] = [];
  for (let i = 0; i < GUEST_CONNECTIONS; i++) onHost.push(await hostConnection(guest.hostProxyPort));
  // The guest's clock may tick in 4 ms steps (jiffies under TCG): the mean is the honest figure.
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const g = mean(inGuest);
  const h = mean(onHost);
  const f = (n: number) => n.toFixed(2);
  return {
    line:
      `egress proxy: new guest connection through the SSH session ${f(g)} ms per request ` +
      `(mean of ${GUEST_CONNECTIONS}, max ${f(at(inGuest, 1))} ms, timed in the guest; ` +
      `${(g / h).toFixed(2)}x slower than a new host connection to the proxy, ${f(h)} ms; no process per connection; goal <= 10 ms)`,
  };
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
      ],
    };
  } finally {
    await proxy.close();
    await new Promise<void>((r) => origin.close(() => r()));
  }
}
