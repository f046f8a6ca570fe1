import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import type {
  ApprovalBroker,
  ApprovalRequest,
  PendingApproval,
  Verdict,
} from '../../src/host/approvals/types.js';
import { CoworkError } from '../../src/host/errors.js';

/**
 * Loopback stand-ins for the egress proxy tests: an origin web server, a TLS echo server with a
 * self-signed certificate for a `.test` name, raw proxy clients, and a scripted approval broker.
 * Nothing here resolves or contacts anything but 127.0.0.1.
 */

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export async function startOrigin(): Promise<{ server: http.Server; port: number; seen: SeenRequest[] }> {
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const reply = JSON.stringify({ method: req.method, url: req.url, body });
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(reply),
        'x-origin': 'yes',
        connection: 'keep-alive, x-origin-hop',
        'x-origin-hop': 'must not reach the client',
      });
      res.end(reply);
    });
  });
  await listen(server);
  return { server, port: (server.address() as net.AddressInfo).port, seen };
}

export function listen(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
}

export function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    (server as http.Server).closeAllConnections?.();
    server.close(() => resolve());
  });
}

export { selfSignedCert } from './tls.js';

/** TLS server that answers each line with "echo:<line>". */
export async function startTlsEcho(cert: {
  key: Buffer;
  cert: Buffer;
}): Promise<{ server: tls.Server; port: number; connections: () => number }> {
  let count = 0;
  const server = tls.createServer(cert, (socket) => {
    count += 1;
    socket.on('data', (d: Buffer) => socket.write(`echo:${d.toString()}`));
    socket.on('error', () => socket.destroy());
  });
  await listen(server);
  return { server, port: (server.address() as net.AddressInfo).port, connections: () => count };
}

export interface ProxyResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP request and its whole response (body as text). */
export function requestText(options: http.RequestOptions, body?: string): Promise<ProxyResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** An absolute-form request through the proxy, as curl with http_proxy sends it. */
export function proxyRequest(
  proxyPort: number,
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<ProxyResponse> {
  return requestText(
    {
      host: '127.0.0.1',
      port: proxyPort,
      method: opts.method ?? 'GET',
      path: url,
      headers: opts.headers,
      agent: false,
    },
    opts.body,
  );
}

/**
 * Sends `CONNECT authority` on a raw socket. On 200 the socket is the tunnel; otherwise the
 * whole response (status line, headers, body) is read until the proxy closes it.
 */
export function connectVia(
  proxyPort: number,
  authority: string,
): Promise<{ status: number; head: string; body: string; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(proxyPort, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let status = 0;
    let headEnd = -1;
    const finish = () => {
      const head = buf.subarray(0, headEnd).toString();
      resolve({ status, head, body: buf.subarray(headEnd + 4).toString(), socket });
    };
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (headEnd < 0) {
        headEnd = buf.indexOf('\r\n\r\n');
        if (headEnd < 0) return;
        status = Number(/^HTTP\/1\.1 (\d{3})/.exec(buf.toString())?.[1] ?? 0);
        if (status === 200) {
          socket.off('data', onData);
          finish();
        }
      }
    };
    socket.on('data', onData);
    socket.on('end', () =>
      headEnd < 0 ? resolve({ status: 0, head: buf.toString(), body: '', socket }) : finish(),
    );
    socket.on('error', reject);
    socket.write(
      `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nProxy-Authorization: Basic eDp5\r\n\r\n`,
    );
  });
}

/** TLS over an established tunnel, verifying the certificate for `servername`. */
export function tlsOverTunnel(
  socket: net.Socket,
  servername: string,
  ca: Buffer,
  line: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const t = tls.connect({ socket, servername, ca }, () => t.write(line));
    t.once('data', (d: Buffer) => {
      resolve(d.toString());
      t.end();
    });
    t.on('error', reject);
  });
}

/** A scripted ApprovalBroker: answers each request with `answer(req)` and remembers what it was asked. */
export class ScriptedBroker implements ApprovalBroker {
  readonly asked: ApprovalRequest[] = [];
  constructor(private readonly answerFor: (req: ApprovalRequest) => Verdict | Promise<Verdict>) {}
  async request(req: ApprovalRequest): Promise<Verdict> {
    this.asked.push(req);
    return this.answerFor(req);
  }
  list(): PendingApproval[] {
    return [];
  }
  // It never has pending approvals to announce, so listeners are accepted and never called.
  on(): this {
    return this;
  }
  off(): this {
    return this;
  }
  answer(): void {
    throw new CoworkError('invalidState', 'ScriptedBroker answers by script');
  }
}

// ---- Wire-level attack helpers: raw bytes in, raw bytes out, upstreams that count ----

/**
 * An upstream that counts every request it parses. Its parser is Node's lenient one, like a
 * sloppy origin: anything the proxy lets through unframed would show up here as an extra request.
 */
export async function startCountingUpstream(): Promise<{
  server: http.Server;
  port: number;
  seen: SeenRequest[];
  connections: () => number;
}> {
  const seen: SeenRequest[] = [];
  let connections = 0;
  const server = http.createServer({ insecureHTTPParser: true }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('latin1');
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const reply = `reply to ${req.method} ${req.url} (${Buffer.byteLength(body)} body bytes)`;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(reply) });
      res.end(reply);
    });
  });
  server.on('connection', () => {
    connections += 1;
  });
  await listen(server);
  return { server, port: (server.address() as net.AddressInfo).port, seen, connections: () => connections };
}

/** Writes `bytes` to the proxy in ONE write and returns everything it sent back until it closed. */
export function rawExchange(port: number, bytes: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes));
    let out = '';
    socket.on('data', (d: Buffer) => {
      out += d.toString('latin1');
    });
    socket.on('close', () => resolve(out));
    socket.on('error', (err: NodeJS.ErrnoException) =>
      err.code === 'ECONNRESET' ? resolve(out) : reject(err),
    );
  });
}

/** Status codes of every response head in a raw byte stream, in order. */
export function statusesIn(raw: string): number[] {
  return [...raw.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
}

/**
 * A TCP port on loopback that never completes a handshake: a listener with a full accept queue in
 * a child process whose event loop is blocked, so the kernel drops further SYNs exactly as a
 * black-holed address does. `stop` kills that child.
 */
export async function startBlackHole(): Promise<{ port: number; stop: () => Promise<void> }> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      "const s=require('net').createServer();s.listen({port:0,host:'127.0.0.1',backlog:1},()=>{" +
        "process.stdout.write(s.address().port+'\\n');Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0)})",
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new CoworkError('internal', `black-hole listener exited (${code})`)));
  });
  // Fill the accept queue (backlog 1 holds two handshakes); nobody ever accepts them.
  const fillers: net.Socket[] = [];
  for (let i = 0; i < 2; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => s.destroy());
    fillers.push(s);
    await new Promise((r) => s.once('connect', r));
  }
  return {
    port,
    stop: async () => {
      for (const s of fillers) s.destroy();
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** One masked client text frame (RFC 6455 §5.2), payload under 126 bytes. */
export function wsClientFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = Buffer.from([1, 2, 3, 4]);
  const masked = Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] as number)));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

/** The text of the first unmasked server text frame in `buf`, if complete. */
export function wsServerText(buf: Buffer): string | undefined {
  if (buf.length < 2 || buf[0] !== 0x81) return undefined;
  const len = (buf[1] as number) & 0x7f;
  return buf.length >= 2 + len ? buf.subarray(2, 2 + len).toString() : undefined;
}
