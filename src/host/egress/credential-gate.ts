import { readFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { CoworkError } from '../errors.js';
import { type CredentialRule, checkCredentialedRequest } from './credentials.js';
import { dialWithTimeout, upstreamFailureStatus } from './dial.js';
import type { EgressEvent } from './events.js';
import { sendText as sendProxyText, upstreamHeaders } from './forward.js';
import { checkRequestFraming } from './framing.js';
import { endToEndHeaders } from './headers.js';
import type { Authorization, EgressTarget, ProxyRuntime } from './runtime.js';
import type { SandboxCA } from './sandbox-ca.js';

type Allowed = Extract<Authorization, { ok: true }>;

/** Debian's system bundle: Mozilla's roots plus what the administrator added (update-ca-certificates). */
const SYSTEM_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/** The roots upstream certificates are verified against: node's own plus the host's system bundle. */
export function hostRoots(bundle = SYSTEM_BUNDLE): string[] {
  let system = '';
  try {
    system = readFileSync(bundle, 'utf8');
  } catch {
    system = ''; // no system bundle (macOS): node's roots alone
  }
  return [...tls.rootCertificates, ...(system ? [system] : [])];
}

interface Terminated {
  rule: CredentialRule;
  target: EgressTarget;
  auth: Allowed;
  taskId: string | null;
}

/**
 * The hosts with a credential rule. A CONNECT to one of them is not a blind tunnel: the proxy
 * answers 200, terminates the guest's TLS with a certificate of the sandbox CA, reads each
 * HTTP/1.1 request, refuses what the rule does not allow (the guest's own credentials first),
 * adds the credential and sends the request over a new TLS connection whose certificate is
 * verified against the host's roots. The secret goes to the rule's host only, never back.
 */
export class CredentialGate {
  private readonly rules = new Map<string, CredentialRule>();
  private readonly server: http.Server;
  private readonly upstreamContext: tls.SecureContext;
  private readonly terminated = new WeakMap<Duplex, Terminated>();

  constructor(
    private readonly rt: ProxyRuntime,
    private readonly ca: SandboxCA,
    rules: readonly CredentialRule[],
    roots: readonly string[],
  ) {
    for (const r of rules) {
      if (this.rules.has(r.host)) {
        throw new CoworkError('invalidArgument', `two credential rules for ${r.host}: keep one`);
      }
      this.rules.set(r.host, r);
    }
    this.upstreamContext = tls.createSecureContext({ ca: [...roots] });
    const { headersTimeoutMs, idleTimeoutMs, maxHeaderBytes } = rt.limits;
    this.server = http.createServer({
      requestTimeout: 0,
      headersTimeout: headersTimeoutMs,
      keepAliveTimeout: idleTimeoutMs,
      maxHeaderSize: maxHeaderBytes,
      insecureHTTPParser: false,
    });
    this.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.handle(req, res));
    this.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex) => {
      const t = this.terminated.get(req.socket);
      socket.end('HTTP/1.1 501 Not Implemented\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      if (t)
        this.recordRequest(t, req, {
          status: 501,
          decision: 'deny',
          reason: 'protocol upgrades are not offered on hosts with a credential rule',
        });
    });
    this.server.on('clientError', (_err: Error, socket: Duplex) => {
      if (socket.writable)
        socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      else socket.destroy();
    });
  }

  ruleFor(host: string): CredentialRule | undefined {
    return this.rules.get(host.toLowerCase());
  }

  get hosts(): string[] {
    return [...this.rules.keys()];
  }

  /**
   * Takes over an allowed CONNECT to a credential host: answers 200 and serves HTTP/1.1 over TLS
   * terminated with the sandbox CA. `done` runs once, when the guest's connection has closed.
   */
  terminate(
    client: Duplex,
    early: Buffer[],
    t: Terminated,
    done: (outcome: { status: number; bytesIn: number; bytesOut: number; error?: string }) => void,
  ): void {
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    const held = Buffer.concat(early);
    if (held.length > 0) client.unshift(held);
    const secure = new tls.TLSSocket(client as net.Socket, {
      isServer: true,
      secureContext: this.ca.contextFor(t.rule.host),
      ALPNProtocols: ['http/1.1'],
    });
    this.rt.track(secure);
    this.terminated.set(secure, t);
    let error: string | undefined;
    secure.on('error', (err: Error) => {
      error ??= `TLS with the guest failed (does the guest trust the sandbox CA?): ${err.message}`;
      secure.destroy();
    });
    secure.once('close', () => {
      client.destroy();
      const sock = client as Partial<net.Socket>;
      done({
        status: 200,
        bytesIn: sock.bytesWritten ?? 0,
        bytesOut: sock.bytesRead ?? 0,
        ...(error ? { error } : {}),
      });
    });
    this.server.emit('connection', secure);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const t = this.terminated.get(req.socket);
    if (!t) {
      res.destroy();
      return;
    }
    const started = performance.now();
    const refuse = (status: number, reason: string) => {
      res.shouldKeepAlive = false;
      sendText(res, status, `cowork-vm egress proxy: refused: ${reason}.\n`);
      this.recordRequest(t, req, {
        status,
        decision: 'deny',
        reason,
        durationMs: performance.now() - started,
      });
      req.resume();
    };
    const framing = checkRequestFraming(req.method ?? '', req.httpVersion, req.rawHeaders);
    if (!framing.ok) {
      refuse(400, framing.reason);
      return;
    }
    const check = checkCredentialedRequest(t.rule, {
      method: req.method ?? '',
      target: req.url ?? '',
      headers: req.headers,
    });
    if (!check.ok) {
      refuse(check.status, check.reason);
      return;
    }
    this.forward(t, req, res, framing.body, started);
  }

  private forward(
    t: Terminated,
    req: http.IncomingMessage,
    res: http.ServerResponse,
    body: Parameters<typeof upstreamHeaders>[2],
    started: number,
  ): void {
    const { rule, auth } = t;
    const raw = dialWithTimeout(
      this.rt.dial,
      { address: auth.address, family: auth.family, port: t.target.port },
      this.rt.limits.connectTimeoutMs,
    );
    this.rt.track(raw);
    const secure = tls.connect({
      socket: raw,
      servername: rule.host,
      secureContext: this.upstreamContext,
      ALPNProtocols: ['http/1.1'],
      checkServerIdentity: (_host, cert) => tls.checkServerIdentity(rule.host, cert),
    });
    this.rt.track(secure);
    const headers = upstreamHeaders(req.rawHeaders, rule.host, body);
    headers[rule.header] = rule.headerValue;
    const upstream = http.request({
      createConnection: () => secure,
      method: req.method,
      path: req.url,
      headers,
      setHost: false,
      insecureHTTPParser: false,
    });
    const idleMs = this.rt.limits.tunnelIdleTimeoutMs;
    upstream.setTimeout(idleMs, () =>
      upstream.destroy(new CoworkError('timeout', `the upstream sent nothing for ${idleMs} ms`)),
    );
    let bytesOut = 0;
    let bytesIn = 0;
    let status: number | undefined;
    let error: string | undefined;
    req.on('data', (c: Buffer) => {
      bytesOut += c.length;
    });
    upstream.on('error', (err: Error & { code?: string }) => {
      error ??= describeUpstreamError(rule.host, err);
      if (!res.headersSent) {
        status = upstreamFailureStatus(err);
        res.shouldKeepAlive = false;
        sendText(
          res,
          status,
          `cowork-vm egress proxy: ${req.method} https://${rule.host}${pathOnly(req.url)}: ${error}\n`,
        );
      } else res.destroy();
    });
    upstream.on('response', (up) => {
      status = up.statusCode ?? 502;
      res.writeHead(status, up.statusMessage, endToEndHeaders(up.rawHeaders).flat());
      up.on('data', (c: Buffer) => {
        bytesIn += c.length;
      });
      up.on('error', () => res.destroy());
      up.pipe(res);
    });
    req.pipe(upstream);
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
      secure.end();
      this.recordRequest(t, req, {
        decision: 'allow',
        reason: `${rule.host} has a credential rule: the proxy added ${rule.header} from the keychain entry "${rule.secretName}"`,
        status: status ?? 502,
        bytesIn,
        bytesOut,
        durationMs: performance.now() - started,
        ...(error ? { error } : {}),
      });
    });
  }

  private recordRequest(
    t: Terminated,
    req: http.IncomingMessage,
    outcome: Partial<Pick<EgressEvent, 'bytesIn' | 'bytesOut' | 'durationMs' | 'error'>> &
      Pick<EgressEvent, 'decision' | 'reason' | 'status'>,
  ): void {
    this.rt.record({
      type: 'egress.request',
      taskId: t.taskId,
      kind: 'http',
      method: req.method ?? '',
      host: t.rule.host,
      port: t.target.port,
      url: `https://${t.rule.host}${pathOnly(req.url)}`,
      stage: 'credential',
      rule: t.rule.host,
      credential: t.rule.secretName,
      address: t.auth.address,
      bytesIn: 0,
      bytesOut: 0,
      durationMs: 0,
      ...outcome,
    });
  }
}

function pathOnly(target: string | undefined): string {
  return (target ?? '').split('?')[0] ?? '';
}

/** Certificate failures say so: the upstream is not who it claims (or the host's roots lack its CA). */
function describeUpstreamError(host: string, err: Error & { code?: string }): string {
  const code = err.code ?? '';
  if (/CERT|SELF_SIGNED|ALTNAME|UNABLE_TO_(GET|VERIFY)|ISSUER/.test(code)) {
    return `the certificate ${host} presented could not be verified against the host's trusted roots (${code}: ${err.message}); nothing was sent`;
  }
  return `the connection to ${host} failed: ${err.message}`;
}

/** Answers keep the guest's terminated connection open, as the request it answers did. */
function sendText(res: http.ServerResponse, status: number, body: string): void {
  sendProxyText(res, status, body, true);
}
