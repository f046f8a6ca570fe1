import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { CoworkError } from '../errors.js';
import { type ClientConnection, MAX_PIPELINED } from './client-connection.js';
import { denyMessage } from './deny-message.js';
import { upstreamFailureStatus } from './dial.js';
import type { EgressEvent } from './events.js';
import { type BodyFraming, checkRequestFraming } from './framing.js';
import { endToEndHeaders, headerObject } from './headers.js';
import { type HttpTarget, parseHttpTarget } from './http-target.js';
import {
  type Authorization,
  authorizeOrRefuse,
  type EgressTarget,
  type EventCommon,
  type ProxyRuntime,
  recordClientGone,
  recordDenial,
  recordRefusal,
} from './runtime.js';

type Allowed = Extract<Authorization, { ok: true }>;

/**
 * Plain-HTTP forwarding: absolute-form requests (`GET http://host/path HTTP/1.1`). The request
 * is checked for unambiguous framing, decided, and sent to the address the proxy checked over
 * this client connection's own upstream pool, with hop-by-hop headers and Proxy-Authorization
 * removed, Host set from the request URL and the body re-framed from what the proxy parsed.
 */
export async function forwardHttp(
  rt: ProxyRuntime,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  taskId: string | null,
): Promise<void> {
  const started = performance.now();
  const elapsed = () => performance.now() - started;
  const method = req.method ?? 'GET';
  const base = { type: 'egress.request' as const, taskId, kind: 'http' as const, method };
  const conn = rt.connectionOf(req.socket);
  // Pipelined behind a refusal: never answered, the connection closes after the refusal.
  if (conn.refused) return;
  const read = readRequest(conn, req, method);
  conn.begin(res);
  if (!read.ok) {
    // The rest of this connection cannot be trusted to be read the same way upstream: close it.
    conn.refuseRest();
    const { status, stage, reason } = read;
    sendText(res, status, `cowork-vm egress proxy: refused: ${reason}${read.hint}.\n`);
    recordRefusal(rt, { ...base, ...read.where }, { status, stage, reason }, elapsed());
    return;
  }
  const { parsed, body } = read;
  const { target, url, shownUrl } = parsed;
  const common: EventCommon = { ...base, host: target.host.host, port: target.port, url: shownUrl };

  const auth = await authorizeOrRefuse(rt, target, taskId);
  if (!auth.ok) {
    sendText(
      res,
      auth.status,
      denyMessage({ ...auth, what: target.what, host: target.host.host, port: target.port }),
    );
    recordDenial(rt, common, auth, elapsed());
    return;
  }
  if (res.destroyed || req.destroyed) {
    // The client left while the request was being decided (e.g. during an approval): dial nothing.
    const { ok: _ok, family: _family, ...allowed } = auth;
    recordClientGone(
      rt,
      common,
      allowed,
      elapsed(),
      'the client closed the connection before the request was forwarded',
    );
    return;
  }
  relayRequest(rt, conn, req, res, {
    target,
    auth,
    path: `${url.pathname}${url.search}`,
    hostHeader: url.host,
    body,
    record: (outcome) => {
      const { ok: _ok, family: _family, ...allowed } = auth;
      rt.record({ ...common, ...allowed, decision: 'allow', durationMs: elapsed(), ...outcome });
    },
  });
}

type ReadRequest =
  | { ok: true; body: BodyFraming; parsed: Extract<HttpTarget, { ok: true }> }
  | {
      ok: false;
      status: 400 | 503;
      stage: 'invalid' | 'limit';
      reason: string;
      hint: string;
      where: { host?: string; port?: number; url?: string };
    };

/** The request's framing and target, or why it is refused before anything is decided. */
function readRequest(conn: ClientConnection, req: http.IncomingMessage, method: string): ReadRequest {
  const parsed = parseHttpTarget(method, req.url ?? '');
  const where = parsed.ok ? { host: parsed.target.host.host, port: parsed.port, url: parsed.shownUrl } : {};
  // Bounded work per connection: a client cannot queue thousands of requests in one write.
  if (conn.pipelineFull) {
    const reason = `more than ${MAX_PIPELINED} pipelined requests unanswered on one connection`;
    return {
      ok: false,
      status: 503,
      stage: 'limit',
      reason,
      hint: '; wait for responses before sending more',
      where,
    };
  }
  const framing = checkRequestFraming(method, req.httpVersion, req.rawHeaders);
  if (!framing.ok)
    return { ok: false, status: 400, stage: 'invalid', reason: framing.reason, hint: '', where };
  if (!parsed.ok) return { ok: false, status: 400, stage: 'invalid', reason: parsed.reason, hint: '', where };
  return { ok: true, body: framing.body, parsed };
}

interface RelayPlan {
  target: EgressTarget;
  auth: Allowed;
  path: string;
  hostHeader: string;
  body: BodyFraming;
  record(outcome: Pick<EgressEvent, 'bytesIn' | 'bytesOut' | 'status' | 'error'>): void;
}

/** The headers sent upstream: end-to-end ones only, Host from the URL, framing re-stated. */
export function upstreamHeaders(
  rawHeaders: readonly string[],
  hostHeader: string,
  body: BodyFraming,
): Record<string, string | string[]> {
  const headers = headerObject(endToEndHeaders(rawHeaders, ['host', 'expect', 'content-length']));
  headers.host = hostHeader;
  if (body.kind === 'length') headers['content-length'] = String(body.length);
  else if (body.kind === 'chunked') headers['transfer-encoding'] = 'chunked';
  return headers;
}

/** Sends the allowed request upstream and streams the response back; records once, at the end. */
function relayRequest(
  rt: ProxyRuntime,
  conn: ClientConnection,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  plan: RelayPlan,
): void {
  const { target, auth } = plan;
  const upstream = openUpstreamRequest(rt, conn, req, plan);
  const tally = {
    bytesIn: 0,
    bytesOut: 0,
    status: undefined as number | undefined,
    error: undefined as string | undefined,
  };
  const fail = (err: Error) => {
    tally.error ??= err.message;
    conn.discardUpstreams();
    if (!res.headersSent) {
      tally.status = upstreamFailureStatus(err);
      sendText(
        res,
        tally.status,
        `cowork-vm egress proxy: ${target.what} was allowed but the connection to ${auth.address} failed: ${err.message}\n`,
      );
    } else {
      res.destroy();
    }
    upstream.destroy();
  };
  upstream.on('error', fail);
  // A 101 to a request that did not ask to switch protocols: nothing sane can follow.
  upstream.on('upgrade', (_up, socket) => {
    socket.destroy();
    fail(new CoworkError('unsupported', 'the upstream switched protocols for a request that did not ask to'));
  });
  upstream.on('response', (up) => streamResponse(conn, res, up, tally, fail, target));

  req.on('data', (chunk: Buffer) => {
    tally.bytesOut += chunk.length;
  });
  req.pipe(upstream);
  req.on('aborted', () => {
    conn.discardUpstreams();
    upstream.destroy();
  });
  res.on('close', () => {
    if (!res.writableFinished) {
      conn.discardUpstreams();
      upstream.destroy();
    }
    plan.record({
      bytesIn: tally.bytesIn,
      bytesOut: tally.bytesOut,
      ...(tally.status ? { status: tally.status } : {}),
      ...(tally.error ? { error: tally.error } : {}),
    });
  });
}

/** The upstream request over this client connection's own pool, bounded by the idle timeout. */
function openUpstreamRequest(
  rt: ProxyRuntime,
  conn: ClientConnection,
  req: http.IncomingMessage,
  plan: RelayPlan,
): http.ClientRequest {
  const upstream = http.request({
    host: plan.auth.address,
    family: plan.auth.family,
    port: plan.target.port,
    method: plan.target.method,
    path: plan.path,
    headers: upstreamHeaders(req.rawHeaders, plan.hostHeader, plan.body),
    setHost: false,
    insecureHTTPParser: false,
    agent: conn.upstreamAgent(),
  });
  const idleMs = rt.limits.tunnelIdleTimeoutMs;
  upstream.setTimeout(idleMs, () =>
    upstream.destroy(new CoworkError('timeout', `the upstream sent nothing for ${idleMs} ms`)),
  );
  return upstream;
}

function streamResponse(
  conn: ClientConnection,
  res: http.ServerResponse,
  up: http.IncomingMessage,
  tally: { bytesIn: number; status: number | undefined; error: string | undefined },
  fail: (err: Error) => void,
  target: EgressTarget,
): void {
  tally.status = up.statusCode ?? 502;
  try {
    res.writeHead(tally.status, up.statusMessage, endToEndHeaders(up.rawHeaders).flat());
  } catch (err) {
    // Node refuses some header bytes an upstream can send; that costs this response only.
    tally.error = `unforwardable response from upstream: ${(err as Error).message}`;
    conn.discardUpstreams();
    up.destroy();
    tally.status = 502;
    sendText(
      res,
      502,
      `cowork-vm egress proxy: ${target.what}: the remote response could not be forwarded.\n`,
    );
    return;
  }
  up.on('data', (chunk: Buffer) => {
    tally.bytesIn += chunk.length;
  });
  up.on('error', fail);
  up.on('aborted', () => fail(new CoworkError('unavailable', 'the upstream cut its response short')));
  up.pipe(res);
}

/**
 * The proxy's own answer (a refusal or an upstream failure) as plain text. `keepAlive`: the
 * connection stays usable (TLS terminated for a credential rule); otherwise it closes.
 */
export function sendText(res: http.ServerResponse, status: number, body: string, keepAlive = false): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // The message is explicit: a failed writeHead (bad upstream status text) leaves its text behind.
  res.writeHead(status, http.STATUS_CODES[status] ?? 'Error', {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-cowork-egress': status === 403 ? 'denied' : 'error',
    ...(keepAlive ? {} : { connection: 'close' }),
  });
  res.end(body);
}
