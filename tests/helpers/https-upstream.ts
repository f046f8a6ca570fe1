import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type tls from 'node:tls';

/**
 * Loopback HTTPS stand-ins for the credential-rule tests: a test CA made with openssl (not with
 * the code under test), leaves it signs, and an HTTPS upstream that records what it receives.
 */

export interface TestCa {
  certPem: string;
  issue(host: string): { key: string; cert: string };
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'ignore' });
}

export function makeTestCa(commonName: string): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'test-ca-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    [
      'req',
      '-x509',
      ...ec,
      '-days',
      '2',
      '-subj',
      `/CN=${commonName}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
    ],
    dir,
  );
  const certPem = readFileSync(join(dir, 'ca.pem'), 'utf8');
  let n = 0;
  return {
    certPem,
    issue(host: string) {
      n += 1;
      writeFileSync(
        join(dir, `ext${n}`),
        `subjectAltName=DNS:${host}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`,
      );
      openssl(['req', '-new', ...ec, '-subj', `/CN=${host}`, '-keyout', `k${n}`, '-out', `r${n}`], dir);
      openssl(
        [
          'x509',
          '-req',
          '-in',
          `r${n}`,
          '-CA',
          'ca.pem',
          '-CAkey',
          'ca.key',
          '-CAcreateserial',
          '-days',
          '2',
          '-extfile',
          `ext${n}`,
          '-out',
          `c${n}`,
        ],
        dir,
      );
      return {
        key: readFileSync(join(dir, `k${n}`), 'utf8'),
        cert: readFileSync(join(dir, `c${n}`), 'utf8'),
      };
    },
  };
}

export interface SeenHttps {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  servername: string | false;
  body: string;
}

export interface HttpsUpstream {
  server: https.Server;
  port: number;
  seen: SeenHttps[];
  close(): Promise<void>;
}

/**
 * An HTTPS server on `address` (a 127.0.0.x) that records each request and answers with
 * `route(req)` (default: 200 and a JSON echo of method and URL, never of headers).
 */
export async function startHttpsUpstream(
  address: string,
  cert: { key: string; cert: string },
  route?: (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => boolean,
  /** Default: any free port. */
  port = 0,
): Promise<HttpsUpstream> {
  const seen: SeenHttps[] = [];
  const server = https.createServer(cert, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const body = raw.toString('latin1');
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        servername: (req.socket as tls.TLSSocket).servername,
        body,
      });
      if (route?.(req, res, raw)) return;
      const reply = JSON.stringify({ method: req.method, url: req.url });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(reply) });
      res.end(reply);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => resolve());
  });
  return {
    server,
    port: (server.address() as net.AddressInfo).port,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Serves `git http-backend` (smart HTTP, clone and push) for repositories under `root`, the way
 * a forge does.
 */
export function gitBackend(
  root: string,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  body: Buffer,
): void {
  const [pathInfo = '', query = ''] = (req.url ?? '').split('?');
  const child = spawn('git', ['http-backend'], {
    env: {
      PATH: process.env.PATH,
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: '1',
      PATH_INFO: pathInfo,
      QUERY_STRING: query,
      REQUEST_METHOD: req.method ?? 'GET',
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      CONTENT_LENGTH: String(body.length),
      HTTP_CONTENT_ENCODING: String(req.headers['content-encoding'] ?? ''),
      GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
      REMOTE_USER: 'me',
      REMOTE_ADDR: '127.0.0.1',
    },
  });
  const out: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.on('close', () => {
    const all = Buffer.concat(out);
    const split = all.indexOf('\r\n\r\n');
    const head = all.subarray(0, split).toString().split('\r\n');
    const headers: Record<string, string> = {};
    let status = 200;
    for (const line of head) {
      const [k = '', ...v] = line.split(':');
      if (k.toLowerCase() === 'status') status = Number(v.join(':').trim().split(' ')[0]);
      else if (k) headers[k] = v.join(':').trim();
    }
    res.writeHead(status, headers);
    res.end(all.subarray(split + 4));
  });
  child.stdin.end(body);
}
