/**
 * Request framing, checked before anything is decided or forwarded. The proxy and the upstream
 * MUST agree on where each request ends; any header set that two HTTP parsers could read
 * differently is refused with a 400 instead of being "repaired", and the body is re-framed
 * from what the proxy's own parser read (never passed on unframed).
 *
 * Node's parser (llhttp, strict mode) already rejects Content-Length with Transfer-Encoding,
 * duplicate or non-numeric Content-Length, obs-fold, bare CR/LF and invalid header names; this
 * check repeats those rules over the raw header list so that they hold even if the parser is
 * ever made lenient, and adds the ones llhttp accepts.
 */

export type BodyFraming = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' };

export type FramingCheck = { ok: true; body: BodyFraming } | { ok: false; reason: string };

/** Methods whose requests never carry a chunked body through this proxy. */
const NO_CHUNKED_BODY = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);
/** Methods that carry no content at all (RFC 9110 §9.3.6, §9.3.8; HEAD by convention). */
const NO_CONTENT = new Set(['HEAD', 'TRACE', 'CONNECT']);
/** Headers a client may not ask a proxy to drop: dropping them changes where the request ends. */
const FRAMING_HEADERS = new Set(['content-length', 'transfer-encoding', 'host']);

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: visible characters, space, tab and obs-text; never CR, LF, NUL or another control.
const BAD_VALUE_CHAR = /[\u0000-\u0008\u000a-\u001f\u007f]/;
const DIGITS = /^[0-9]{1,15}$/;

const refuse = (reason: string): FramingCheck => ({ ok: false, reason });

export function checkRequestFraming(
  method: string,
  httpVersion: string,
  rawHeaders: readonly string[],
): FramingCheck {
  if (httpVersion !== '1.1' && httpVersion !== '1.0') return refuse(`HTTP/${httpVersion} is not spoken here`);
  const lengths: string[] = [];
  const encodings: string[] = [];
  let hosts = 0;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    const value = rawHeaders[i + 1] as string;
    if (!TOKEN.test(name)) return refuse(`header name ${JSON.stringify(name.slice(0, 60))} is not a token`);
    if (BAD_VALUE_CHAR.test(value))
      return refuse(`header ${name} has a control character (CR, LF, NUL or similar) in its value`);
    const lower = name.toLowerCase();
    if (lower === 'content-length') lengths.push(value.trim());
    else if (lower === 'transfer-encoding') encodings.push(value.trim());
    else if (lower === 'host') hosts += 1;
    else if (lower === 'connection') {
      for (const token of value.split(',')) {
        const t = token.trim().toLowerCase();
        if (FRAMING_HEADERS.has(t))
          return refuse(`the Connection header names ${t}, which the proxy may not drop`);
      }
    }
  }
  if (hosts > 1) return refuse('the request has more than one Host header');
  if (lengths.length > 1) return refuse('the request has more than one Content-Length header');
  if (encodings.length > 1) return refuse('the request has more than one Transfer-Encoding header');
  const length = lengths[0];
  const encoding = encodings[0];
  if (length !== undefined && encoding !== undefined)
    return refuse('the request has both Content-Length and Transfer-Encoding');
  if (encoding !== undefined) {
    if (httpVersion !== '1.1') return refuse(`Transfer-Encoding in an HTTP/${httpVersion} request`);
    if (encoding.toLowerCase() !== 'chunked')
      return refuse(
        `Transfer-Encoding ${JSON.stringify(encoding.slice(0, 60))}: the proxy forwards only "chunked"`,
      );
    if (NO_CHUNKED_BODY.has(method)) return refuse(`Transfer-Encoding on a ${method} request`);
    return { ok: true, body: { kind: 'chunked' } };
  }
  if (length !== undefined) {
    if (!DIGITS.test(length))
      return refuse(`Content-Length ${JSON.stringify(length.slice(0, 60))} is not a decimal number`);
    const n = Number(length);
    if (n > 0 && NO_CONTENT.has(method)) return refuse(`a ${method} request with content`);
    return { ok: true, body: { kind: 'length', length: n } };
  }
  return { ok: true, body: { kind: 'none' } };
}

/** Node's parser and timeout errors as the status and reason the client is answered with. */
export function clientErrorAnswer(
  err: Error & { code?: string; reason?: string },
  maxHeaderBytes: number,
  headersTimeoutMs: number,
): { status: 400 | 408 | 431; reason: string; isRequest: boolean } {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return {
        status: 431,
        reason: `the request header block is larger than ${maxHeaderBytes} bytes`,
        isRequest: true,
      };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return {
        status: 408,
        reason: `no complete request header block arrived within ${headersTimeoutMs} ms`,
        isRequest: false,
      };
    default:
      return {
        status: 400,
        reason: `malformed or ambiguously framed request: ${err.reason ?? err.message}`,
        isRequest: true,
      };
  }
}
