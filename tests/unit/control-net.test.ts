import { describe, expect, it } from 'vitest';
import { displaySafeName, sanitizeDeviceName } from '../../src/host/control/device-name.js';
import { addressKey, listenRefusal } from '../../src/host/control/net.js';

describe('addressKey', () => {
  it('keeps IPv4 and ::1 as they are and folds IPv6 to its /64', () => {
    expect(addressKey('127.0.0.1')).toBe('127.0.0.1');
    expect(addressKey('::1')).toBe('::1');
    expect(addressKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2::9')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:0db8:0001:0002:ffff::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('fe80::1')).toBe('fe80:0:0:0::/64');
    expect(addressKey('::ffff:10.0.0.1')).toBe('0:0:0:0::/64');
  });

  it('gives every address of one /64 the same key, whatever the spelling', () => {
    const keys = new Set(
      ['2001:db8:a:b::1', '2001:db8:a:b:ffff:ffff:ffff:ffff', '2001:DB8:A:B:0:0:0:7', '2001:db8:a:b:1::'].map(
        (a) => addressKey(a.toLowerCase()),
      ),
    );
    expect(keys).toEqual(new Set(['2001:db8:a:b::/64']));
  });
});

describe('listenRefusal', () => {
  it('allows loopback, and off loopback only with allowRemote and TLS', () => {
    for (const h of ['127.0.0.1', '127.9.9.9', '::1', 'localhost'])
      expect(listenRefusal(h, {})).toBeUndefined();
    expect(listenRefusal('0.0.0.0', {})).toMatch(/allowRemote/);
    expect(listenRefusal('0.0.0.0', { allowRemote: true })).toMatch(
      /without TLS.*\[control\] tls = \{ cert = .*, key = /,
    );
    expect(listenRefusal('::', { allowRemote: true })).toMatch(/without TLS/);
    expect(listenRefusal('0.0.0.0', { allowRemote: true, tls: true })).toBeUndefined();
  });
});

describe('device names', () => {
  it.each([
    ['plain', 'laptop', 'laptop'],
    ['C0 and DEL', 'a\u0000b\u0007c\u001b[0md\u007f', 'abc[0md'],
    ['C1', 'a\u0085b\u009bc', 'abc'],
    ['bidi embeddings and overrides', 'x\u202Agpj.exe\u202Cy\u202E', 'xgpj.exey'],
    ['bidi isolates', '\u2066a\u2067b\u2068c\u2069', 'abc'],
    ['marks, zero-width and BOM', '\u200Ea\u200Fb\u200Bc\u200Cd\u200De\u2060f\uFEFF\u061C', 'abcdef'],
    ['line separators and newlines', 'one\ntwo\u2028three\u2029four\r\n', 'onetwothreefour'],
    ['tags and private use', 'a\u{E0041}b\uE000c', 'abc'],
    ['whitespace runs', '  my \t\u00A0 phone  ', 'my phone'],
    ['non-Latin text stays', 'Téléphone de Zoë 📱', 'Téléphone de Zoë 📱'],
  ])('%s', (_what, raw, want) => {
    expect(displaySafeName(raw)).toBe(want);
  });

  it('bounds the length in characters, not UTF-16 units', () => {
    expect(displaySafeName('📱'.repeat(100))).toBe('📱'.repeat(64));
  });

  it('refuses a name with nothing printable', () => {
    expect(() => sanitizeDeviceName('\u202E\u200B\u0000 ')).toThrow(
      expect.objectContaining({ code: 'invalidArgument' }),
    );
  });
});
