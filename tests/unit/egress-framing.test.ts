import { describe, expect, it } from 'vitest';
import { upstreamHeaders } from '../../src/host/egress/forward.js';
import { clientErrorAnswer } from '../../src/host/egress/framing.js';
import {
  checkRequestFraming,
  DEFAULT_LIMITS,
  LIMIT_RANGES,
  resolveLimits,
} from '../../src/host/egress/index.js';

// The pure half of the proxy's wire handling: which header sets are refused, how a body is
// re-framed, and how limits are checked. The live-socket attacks are in
// tests/integration/egress-attacks-*.test.ts.

const check = (method: string, raw: string[], version = '1.1') => checkRequestFraming(method, version, raw);

describe('checkRequestFraming', () => {
  const refused: [string, string[], string?][] = [
    ['POST', ['Content-Length', '3', 'Transfer-Encoding', 'chunked']],
    ['POST', ['Transfer-Encoding', 'chunked', 'Content-Length', '3']],
    ['POST', ['Content-Length', '3', 'Content-Length', '3']],
    ['POST', ['Content-Length', '3', 'CONTENT-LENGTH', '4']],
    ['POST', ['Content-Length', '3,3']],
    ['POST', ['Content-Length', '-1']],
    ['POST', ['Content-Length', '1e3']],
    ['POST', ['Content-Length', '']],
    ['POST', ['Content-Length', '9999999999999999']],
    ['POST', ['Transfer-Encoding', 'gzip, chunked']],
    ['POST', ['Transfer-Encoding', 'chunked, chunked']],
    ['POST', ['Transfer-Encoding', 'identity']],
    ['POST', ['Transfer-Encoding', '']],
    ['POST', ['Transfer-Encoding', 'chunked', 'Transfer-Encoding', 'chunked']],
    ['POST', ['Transfer-Encoding', 'chunked'], '1.0'],
    ['GET', ['Transfer-Encoding', 'chunked']],
    ['HEAD', ['Transfer-Encoding', 'chunked']],
    ['DELETE', ['Transfer-Encoding', 'chunked']],
    ['OPTIONS', ['Transfer-Encoding', 'chunked']],
    ['TRACE', ['Transfer-Encoding', 'chunked']],
    ['CONNECT', ['Transfer-Encoding', 'chunked']],
    ['HEAD', ['Content-Length', '1']],
    ['TRACE', ['Content-Length', '1']],
    ['CONNECT', ['Content-Length', '1']],
    ['GET', ['Connection', 'Content-Length', 'Content-Length', '5']],
    ['GET', ['Connection', 'keep-alive,  content-length ']],
    ['GET', ['Connection', 'close', 'Connection', 'transfer-encoding']],
    ['GET', ['Connection', 'HOST']],
    ['GET', ['Host', 'a', 'Host', 'a']],
    ['GET', ['X-A', 'a\r\n b']],
    ['GET', ['X-A', 'a\nb']],
    ['GET', ['X-A', 'a\rb']],
    ['GET', ['X-A', 'a\u0000b']],
    ['GET', ['X-A', 'a\u007fb']],
    ['GET', ['X A', 'b']],
    ['GET', ['X-A:', 'b']],
    ['GET', ['', 'b']],
    ['GET', ['Host', 'a'], '2.0'],
    ['GET', ['Host', 'a'], '0.9'],
  ];
  it.each(refused)('%s %j (HTTP/%s) is refused with a reason', (method, raw, version) => {
    const r = check(method, raw, version);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason.length).toBeGreaterThan(10);
  });

  it('reads the body framing of what it accepts', () => {
    expect(check('GET', ['Host', 'a'])).toEqual({ ok: true, body: { kind: 'none' } });
    expect(check('GET', ['Host', 'a'], '1.0')).toEqual({ ok: true, body: { kind: 'none' } });
    expect(check('POST', ['Content-Length', ' 12 '])).toEqual({
      ok: true,
      body: { kind: 'length', length: 12 },
    });
    expect(check('GET', ['Content-Length', '5'])).toEqual({ ok: true, body: { kind: 'length', length: 5 } });
    expect(check('HEAD', ['Content-Length', '0'])).toEqual({ ok: true, body: { kind: 'length', length: 0 } });
    expect(check('PUT', ['Transfer-Encoding', 'Chunked'])).toEqual({ ok: true, body: { kind: 'chunked' } });
    expect(check('GET', ['Connection', 'keep-alive, x-hop', 'X-Hop', 'v', 'X-Tab', 'a\tb'])).toMatchObject({
      ok: true,
    });
    expect(check('GET', ['X-Latin', 'caf\u00e9'])).toMatchObject({ ok: true }); // obs-text is allowed
  });
});

describe('upstreamHeaders', () => {
  it('re-states the framing the proxy parsed and drops what the client asked to drop', () => {
    const raw = [
      'Host',
      'evil',
      'Content-Length',
      '99',
      'Connection',
      'x-drop',
      'X-Drop',
      '1',
      'X-Keep',
      '2',
    ];
    expect(upstreamHeaders(raw, 'site.test', { kind: 'length', length: 5 })).toEqual({
      host: 'site.test',
      'content-length': '5',
      'x-keep': '2',
    });
    expect(upstreamHeaders(['Transfer-Encoding', 'chunked'], 'h', { kind: 'chunked' })).toEqual({
      host: 'h',
      'transfer-encoding': 'chunked',
    });
    expect(
      upstreamHeaders(['Expect', '100-continue', 'Proxy-Authorization', 'x'], 'h', { kind: 'none' }),
    ).toEqual({
      host: 'h',
    });
  });
});

describe('clientErrorAnswer', () => {
  it('maps header overflow, timeouts and parser errors to 431, 408 and 400', () => {
    const err = (code: string, reason?: string) => Object.assign(new Error('parse'), { code, reason });
    expect(clientErrorAnswer(err('HPE_HEADER_OVERFLOW'), 2048, 100)).toMatchObject({
      status: 431,
      isRequest: true,
    });
    expect(clientErrorAnswer(err('ERR_HTTP_REQUEST_TIMEOUT'), 2048, 100)).toMatchObject({
      status: 408,
      isRequest: false,
    });
    expect(clientErrorAnswer(err('HPE_INVALID_HEADER_TOKEN', 'Invalid header token'), 1, 1).reason).toContain(
      'Invalid header token',
    );
  });
});

describe('resolveLimits', () => {
  it('fills the defaults', () => {
    expect(resolveLimits()).toEqual(DEFAULT_LIMITS);
    expect(DEFAULT_LIMITS).toMatchObject({
      headersTimeoutMs: 10_000,
      idleTimeoutMs: 60_000,
      maxConnections: 256,
    });
  });
  it('refuses each limit outside its range, naming it, the value and the range', () => {
    for (const [key, [min, max]] of Object.entries(LIMIT_RANGES)) {
      for (const bad of [min - 1, max + 1, min + 0.5, Number.NaN]) {
        expect(() => resolveLimits({ [key]: bad }), `${key}=${bad}`).toThrow(
          new RegExp(`${key} = .* is out of range: it must be an integer from ${min} to ${max}`),
        );
      }
      expect(resolveLimits({ [key]: min })[key as keyof typeof DEFAULT_LIMITS]).toBe(min);
    }
  });
});
