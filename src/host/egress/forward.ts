import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { denyMessage } from './deny-message.js';
import { endToEndHeaders, headerObject } from './headers.js';
import { normalizeHost } from './host.js';
import {
  type Authorization,
  type EgressTarget,
  type ProxyRuntime,
  recordClientGone,
  recordDenial,
} from './proxy.js';

/**
 * Plain-HTTP forwarding: absolute-form requests (`GET http://host/path HTTP/1.1`). The request
 * goes to the address the proxy checked, with hop-by-hop headers and Proxy-Authorization
 * removed and Host set from the request URL.
 */
export async function forwardHttp(
  rt: ProxyRuntime,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  taskId: string | null,
): Promise<void> {
  const started = performance.now();
  const method = req.method ?? 'GET';
  const rawUrl = req.url ?? '';
  const base = { type: 'egress.request' as const, taskId, kind: 'http' as const, method };
  const elapsed = () => performance.now() - started;

  let url: URL | undefined;
  try {
    url = /^http:\/\//i.test(rawUrl) ? new URL(rawUrl) : undefined;
  } catch {
    url = undefined;
  }
  const host = url ? normalizeHost(url.hostname) : null;
  if (!url || !host || (url.port !== '' && Number(url.port) === 0)) {
    const why = /^https:\/\//i.test(rawUrl)
      ? 'https URLs go through CONNECT (set HTTPS_PROXY), the proxy does not open TLS itself'
      : 'send absolute-form requests (http://host/path) or CONNECT host:port';
    sendText(
      res,
      400,
      `cowork-vm egress proxy: cannot forward ${JSON.stringify(rawUrl.slice(0, 200))}: ${why}.\n`,
    );
    rt.record({
      ...base,
      host: '',
      port: 0,
      decision: 'deny',
      stage: 'invalid',
      reason: why,
      status: 400,
      bytesIn: 0,
      bytesOut: 0,
      durationMs: elapsed(),
    });
    return;
  }
  const port = url.port === '' ? 80 : Number(url.port);
  const shownUrl = `${url.protocol}//${url.host}${url.pathname}`;
  const target: EgressTarget = {
    kind: 'http',
    method,
    host,
    port,
    url: shownUrl,
    what: `${method} ${shownUrl}`,
  };
  const common = { ...base, host: host.host, port, url: shownUrl };

  let auth: Authorization;
  try {
    auth = await rt.authorize(target, taskId);
  } catch (err) {
    auth = { ok: false, status: 502, stage: 'resolve', reason: `the proxy failed to decide: ${String(err)}` };
  }
  if (!auth.ok) {
    const body = denyMessage({ ...auth, what: target.what, host: host.host, port });
    sendText(res, auth.status, body);
    recordDenial(rt, common, auth, elapsed());
    return;
  }

  const { ok: _ok, family: _family, ...allowed } = auth;
  if (res.destroyed || req.destroyed) {
    // The client left while the request was being decided (e.g. during an approval): dial nothing.
    recordClientGone(
      rt,
      common,
      allowed,
      elapsed(),
      'the client closed the connection before the request was forwarded',
    );
    return;
  }
  let bytesOut = 0;
  let bytesIn = 0;
  let status: number | undefined;
  let error: string | undefined;
  const headers = headerObject(endToEndHeaders(req.rawHeaders, ['host', 'expect']));
  headers.host = url.host;
  const upstream = http.request({
    host: auth.address,
    family: auth.family,
    port,
    method,
    path: `${url.pathname}${url.search}`,
    headers,
    setHost: false,
    agent: rt.agent,
  });
  upstream.setTimeout(rt.idleTimeoutMs, () => upstream.destroy(new Error('upstream timed out')));
  let recorded = false;
  const finish = () => {
    if (recorded) return;
    recorded = true;
    const info = { ...allowed, decision: 'allow' as const, bytesIn, bytesOut, durationMs: elapsed() };
    rt.record({ ...common, ...info, ...(status ? { status } : {}), ...(error ? { error } : {}) });
  };

  req.on('data', (chunk: Buffer) => {
    bytesOut += chunk.length;
  });
  req.pipe(upstream);
  req.on('aborted', () => upstream.destroy());
  res.on('close', () => {
    if (!res.writableFinished) upstream.destroy();
    finish();
  });
  upstream.on('response', (up) => {
    status = up.statusCode ?? 502;
    const pairs = endToEndHeaders(up.rawHeaders);
    try {
      res.writeHead(status, up.statusMessage, pairs.flat());
    } catch (err) {
      // Node refuses some header bytes an upstream can send; that costs this response only.
      error = `unforwardable response from upstream: ${(err as Error).message}`;
      up.destroy();
      sendText(
        res,
        502,
        `cowork-vm egress proxy: ${target.what}: the remote response could not be forwarded.\n`,
      );
      status = 502;
      return;
    }
    up.on('data', (chunk: Buffer) => {
      bytesIn += chunk.length;
    });
    up.pipe(res);
    up.on('error', (err) => {
      error = err.message;
      res.destroy();
    });
  });
  upstream.on('error', (err) => {
    error = err.message;
    if (!res.headersSent) {
      status = 502;
      sendText(
        res,
        502,
        `cowork-vm egress proxy: ${target.what} was allowed but the connection to ${auth.address} failed: ${err.message}\n`,
      );
    } else {
      res.destroy();
    }
  });
}

function sendText(res: http.ServerResponse, status: number, body: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // The message is explicit: a failed writeHead (bad upstream status text) leaves its text behind.
  res.writeHead(status, http.STATUS_CODES[status] ?? 'Error', {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-cowork-egress': status === 403 ? 'denied' : 'error',
    connection: 'close',
  });
  res.end(body);
}
