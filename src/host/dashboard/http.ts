import type { IncomingMessage, ServerResponse } from 'node:http';
import { CoworkError, type ErrorCode } from '../errors.js';

/** The small HTTP vocabulary of the dashboard server: headers every answer carries, pages, JSON. */

export const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** On every response, whatever it is (page, asset, JSON, event stream, refusal). */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': CSP,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cache-Control': 'no-store',
};

/**
 * The session cookie's name names the port: browsers keep cookies per host, not per port, so two
 * sandboxes' dashboards on 127.0.0.1 would otherwise overwrite (and log out) each other's session.
 */
export function sessionCookieName(port: number): string {
  return `cvm_session_${port}`;
}
export const CSRF_HEADER = 'x-cowork-csrf';
export const LOGIN_HINT = 'Run `cowork-vm dashboard` in a terminal for a new login link.';

export function applySecurityHeaders(res: ServerResponse): void {
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
}

const STATUS_OF: Record<ErrorCode, number> = {
  invalidArgument: 400,
  notFound: 404,
  invalidState: 409,
  timeout: 504,
  unsupported: 501,
  denied: 403,
  unavailable: 503,
  cancelled: 409,
  limitExceeded: 429,
  internal: 500,
};

export function statusOf(code: ErrorCode): number {
  return STATUS_OF[code];
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** `{ error: { code, message } }` with the status its code means (or the one given). */
export function sendError(
  res: ServerResponse,
  err: unknown,
  status?: number,
  headers: Record<string, string> = {},
): void {
  const e = CoworkError.from(err);
  sendJson(res, status ?? statusOf(e.code), { error: e.toJSON() }, headers);
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A plain page (no script, no style: it must render under the CSP with nothing else loaded). */
export function sendPage(
  res: ServerResponse,
  status: number,
  title: string,
  lines: string[],
  headers: Record<string, string> = {},
): void {
  const body = [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>${escapeHtml(title)} · cowork-vm</title></head><body>`,
    `<h1>${escapeHtml(title)}</h1>`,
    ...lines.map((l) => `<p>${escapeHtml(l)}</p>`),
    '</body></html>',
    '',
  ].join('\n');
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

export function methodNotAllowed(res: ServerResponse, allow: string[], api: boolean): void {
  const message = `this address answers ${allow.join(', ')} only`;
  const headers = { Allow: allow.join(', ') };
  if (api) sendError(res, new CoworkError('invalidArgument', message), 405, headers);
  else sendPage(res, 405, 'Method not allowed', [message], headers);
}

/** The value of one cookie, or undefined (the first one wins, as browsers send the most specific first). */
export function readCookie(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Reads a request body up to `limit` bytes; beyond it, a `limitExceeded` error (413). */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      reject(new CoworkError('limitExceeded', `the request body is larger than ${limit} bytes`));
      return;
    }
    let chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
      else if (!refused) {
        // The rest is read and dropped, so the refusal can still be answered on this socket.
        refused = true;
        chunks = [];
        reject(new CoworkError('limitExceeded', `the request body is larger than ${limit} bytes`));
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
