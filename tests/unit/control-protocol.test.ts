import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { NonceRegistry } from '../../src/host/control/auth.js';
import {
  computeAuthHmac,
  isLoopbackHost,
  originAllowed,
  PAIRING_ALPHABET,
  prepareCall,
  verifyAuthHmac,
} from '../../src/host/control/index.js';
import { normalizeIp } from '../../src/host/control/net.js';
import { clientFrameSchema, pairingCodeSchema, serverFrameSchema } from '../../src/host/control/protocol.js';

describe('HMAC answer', () => {
  const key = Buffer.alloc(32, 3);
  it('is HMAC-SHA256(key, nonce ‖ serverId) in lowercase hex', () => {
    const expected = createHmac('sha256', key).update('abcsrv').digest('hex');
    expect(computeAuthHmac(key, 'abc', 'srv')).toBe(expected);
  });
  it('verifies only the exact answer', () => {
    const good = computeAuthHmac(key, 'n', 's');
    expect(verifyAuthHmac(key, 'n', 's', good)).toBe(true);
    expect(verifyAuthHmac(key, 'n', 's2', good)).toBe(false);
    expect(verifyAuthHmac(key, 'n2', 's', good)).toBe(false);
    expect(verifyAuthHmac(Buffer.alloc(32, 4), 'n', 's', good)).toBe(false);
    expect(verifyAuthHmac(key, 'n', 's', good.slice(0, 62))).toBe(false);
    expect(verifyAuthHmac(key, 'n', 's', '')).toBe(false);
  });
});

describe('NonceRegistry', () => {
  it('hands out distinct nonces and accepts each once, only on its own connection', () => {
    const reg = new NonceRegistry<object>();
    const a = {};
    const b = {};
    const na = reg.issue(a, 100);
    const nb = reg.issue(b, 200);
    expect(na).not.toBe(nb);
    expect(reg.take(b, na)).toBeUndefined();
    expect(reg.take(a, na)).toBe(100);
    expect(reg.take(a, na)).toBeUndefined();
    reg.drop(b);
    expect(reg.take(b, nb)).toBeUndefined();
    expect(reg.size).toBe(0);
  });
});

describe('addresses and origins', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.5.6.7', true],
    ['::1', true],
    ['[::1]', true],
    ['localhost', true],
    ['::ffff:127.0.0.1', true],
    ['0.0.0.0', false],
    ['::', false],
    ['192.168.1.2', false],
    ['10.0.0.1', false],
    ['localhost.evil.example', false],
    ['128.0.0.1', false],
  ])('isLoopbackHost(%s) = %s', (host, loop) => {
    expect(isLoopbackHost(host)).toBe(loop);
  });

  it('normalizes v4-mapped addresses', () => {
    expect(normalizeIp('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(normalizeIp('::1')).toBe('::1');
    expect(normalizeIp(undefined)).toBe('unknown');
  });

  const self = { port: 8123, tls: false };
  it.each([
    [undefined, true],
    ['http://127.0.0.1:8123', true],
    ['http://localhost:8123', true],
    ['http://[::1]:8123', true],
    ['https://127.0.0.1:8123', false],
    ['http://127.0.0.1:8124', false],
    ['http://127.0.0.1', false],
    ['http://evil.example', false],
    ['http://localhost.evil.example:8123', false],
    ['null', false],
    ['', false],
    ['https://dash.example', true],
    ['https://dash.example.evil', false],
  ])('origin %s allowed = %s', (origin, ok) => {
    expect(originAllowed(origin, ['https://dash.example'], self)).toBe(ok);
  });
});

describe('frames', () => {
  it('accepts the documented client frames and nothing looser', () => {
    expect(clientFrameSchema.safeParse({ type: 'req', id: '1', method: 'status' }).success).toBe(true);
    expect(clientFrameSchema.safeParse({ type: 'req', id: '1', method: 'status', x: 1 }).success).toBe(false);
    expect(clientFrameSchema.safeParse({ type: 'req', id: '', method: 'status' }).success).toBe(false);
    expect(clientFrameSchema.safeParse({ type: 'req', id: 'x'.repeat(65), method: 'status' }).success).toBe(
      false,
    );
    expect(
      clientFrameSchema.safeParse({ type: 'auth', deviceId: 'd', nonce: 'n', hmac: 'A'.repeat(64) }).success,
    ).toBe(false);
    expect(
      clientFrameSchema.safeParse({ type: 'auth', deviceId: 'd', nonce: 'n', hmac: 'a'.repeat(64) }).success,
    ).toBe(true);
    expect(clientFrameSchema.safeParse({ type: 'pair', code: 'ABCDEF', name: 'n' }).success).toBe(true);
    expect(clientFrameSchema.safeParse({ type: 'res', id: '1', ok: true, result: 1 }).success).toBe(false);
  });

  it('describes server frames', () => {
    expect(
      serverFrameSchema.safeParse({
        type: 'res',
        id: null,
        ok: false,
        error: { code: 'denied', message: 'm' },
      }).success,
    ).toBe(true);
    expect(serverFrameSchema.safeParse({ type: 'res', id: null, ok: true, result: 1 }).success).toBe(false);
    expect(
      serverFrameSchema.safeParse({ type: 'res', id: '1', ok: false, error: { code: 'nope', message: 'm' } })
        .success,
    ).toBe(false);
  });

  it('pairing codes use an alphabet without I, O, 0 and 1', () => {
    expect(PAIRING_ALPHABET).toHaveLength(32);
    for (const ch of 'IO01') expect(PAIRING_ALPHABET).not.toContain(ch);
    expect(pairingCodeSchema.safeParse(' abc234 ').data).toBe('ABC234');
    for (const bad of ['ABCDE', 'ABCDEFG', 'ABCDE1', 'ABCDEO', 'ABCDEI', 'ABCDE0', 'ABC-23']) {
      expect(pairingCodeSchema.safeParse(bad).success).toBe(false);
    }
  });
});

describe('prepareCall', () => {
  it('checks the method, then the role, then the params', () => {
    const unknown = prepareCall('nope', {}, 'admin');
    expect(unknown).toMatchObject({ ok: false, protocol: true, error: { code: 'notFound' } });
    // Role is checked before params: a viewer learns nothing about exec's parameters.
    const role = prepareCall('exec', { bogus: 1 }, 'viewer');
    expect(role).toMatchObject({ ok: false, protocol: false, error: { code: 'denied' } });
    const params = prepareCall('exec', { bogus: 1 }, 'admin');
    expect(params).toMatchObject({ ok: false, protocol: true, error: { code: 'invalidArgument' } });
    expect(prepareCall('exec', { command: 'id' }, 'admin').ok).toBe(true);
    expect(prepareCall('status', undefined, 'viewer').ok).toBe(true);
    expect(prepareCall('toString', {}, 'admin').ok).toBe(false);
    expect(prepareCall('__proto__', {}, 'admin').ok).toBe(false);
  });
});
