import { normalizeHost } from './host.js';
import type { EgressTarget } from './runtime.js';

export type HttpTarget =
  | { ok: true; url: URL; port: number; shownUrl: string; target: EgressTarget }
  | { ok: false; reason: string };

/**
 * The target of an absolute-form request (`GET http://host/path HTTP/1.1`), as plain-HTTP
 * forwarding and WebSocket upgrades both receive it. The query string is left out of the shown
 * URL (it often carries tokens).
 */
export function parseHttpTarget(method: string, rawUrl: string): HttpTarget {
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
    return { ok: false, reason: `cannot forward ${JSON.stringify(rawUrl.slice(0, 200))}: ${why}` };
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
  return { ok: true, url, port, shownUrl, target };
}
