import { describe, expect, it } from 'vitest';
import {
  blockedAddressReason,
  denyAddresses,
  dialForm,
  embeddedIPv4,
  normalizeHost,
  parseConnectAuthority,
  parseIPv4Loose,
  parseIPv6,
  parseIp,
  ruleAddress,
} from '../../src/host/egress/index.js';

const text = (s: string) => parseIp(s)?.text;
const blocked = (s: string) => {
  const host = normalizeHost(s);
  if (host?.kind !== 'ip') throw new Error(`not an IP: ${s}`);
  return blockedAddressReason(host.bytes);
};

describe('IPv4 spellings (inet_aton / WHATWG)', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1'],
    ['2130706433', '127.0.0.1'],
    ['0x7f000001', '127.0.0.1'],
    ['017700000001', '127.0.0.1'],
    ['0177.0.0.1', '127.0.0.1'],
    ['0x7f.1', '127.0.0.1'],
    ['127.1', '127.0.0.1'],
    ['127.0.1', '127.0.0.1'],
    ['0x7f.0x0.0x0.0x1', '127.0.0.1'],
    ['10.0.0.1.', '10.0.0.1'],
    ['0', '0.0.0.0'],
    ['0x', '0.0.0.0'],
    ['3232235521', '192.168.0.1'],
  ])('%s is %s', (input, expected) => {
    const bytes = parseIPv4Loose(input);
    expect(bytes && Array.from(bytes).join('.')).toBe(expected);
  });

  it.each([
    '256.0.0.1',
    '1.2.3.4.5',
    '08.0.0.1',
    '0x1g',
    '4294967296',
    '1.16777216',
    '',
    '.',
    'a.b.c.d',
    '1..2',
  ])('%s is not an IPv4 address', (input) => {
    expect(parseIPv4Loose(input)).toBeNull();
  });
});

describe('IPv6 parsing', () => {
  it('parses and canonicalises', () => {
    expect(text('::1')).toBe('::1');
    expect(text('0:0:0:0:0:0:0:1')).toBe('::1');
    expect(text('[::ffff:127.0.0.1]')).toBe('::ffff:7f00:1');
    expect(text('2001:DB8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(text('64:ff9b::10.0.0.1')).toBe('64:ff9b::a00:1');
    expect(text('1:2:3:4:5:6:7:8')).toBe('1:2:3:4:5:6:7:8');
  });
  it.each(['fe80::1%eth0', '1:2:3:4:5:6:7:8:9', '1::2::3', '12345::', '::ffff:256.0.0.1', 'g::1', ':::'])(
    '%s is refused',
    (input) => {
      expect(parseIPv6(input)).toBeNull();
    },
  );
});

describe('blockedAddressReason', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'metadata'],
    ['169.254.1.1', 'link-local'],
    ['100.64.0.1', 'carrier-grade'],
    ['100.127.255.255', 'carrier-grade'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['255.255.255.255', 'broadcast'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['[::1]', 'loopback'],
    ['[::]', 'unspecified'],
    ['[fe80::1]', 'link-local'],
    ['[febf::1]', 'link-local'],
    ['[fc00::1]', 'unique-local'],
    ['[fd12:3456::1]', 'unique-local'],
    ['[fd00:ec2::254]', 'metadata'],
    ['[ff02::1]', 'multicast'],
    ['[::ffff:127.0.0.1]', 'loopback'],
    ['[::ffff:7f00:1]', 'loopback'],
    ['[::ffff:10.0.0.1]', 'private'],
    ['[::ffff:169.254.169.254]', 'metadata'],
    ['[::ffff:0:127.0.0.1]', 'loopback'],
    ['[::127.0.0.1]', 'IPv4-compatible'],
    ['[::7f00:1]', 'IPv4-compatible'],
    ['[64:ff9b::127.0.0.1]', 'loopback'],
    ['[64:ff9b::a9fe:a9fe]', 'metadata'],
    ['[64:ff9b:1::1]', 'NAT64'],
    ['[2002:7f00:1::]', 'loopback'],
    ['[2002:c0a8:101::1]', 'private'],
    ['[2001::1]', 'Teredo'],
  ])('%s is refused (%s)', (input, what) => {
    expect(blocked(input)).toContain(what);
  });

  it.each([
    '93.184.216.34',
    '8.8.8.8',
    '172.32.0.1',
    '100.128.0.1',
    '203.0.113.10',
    '[2606:4700::1111]',
    '[::ffff:8.8.8.8]',
    '[64:ff9b::808:808]',
    '[2002:808:808::]',
  ])('%s is an ordinary public address', (input) => {
    expect(blocked(input)).toBeNull();
  });
});

describe('normalizeHost', () => {
  it('canonicalises names and numbers the way the URL parser does', () => {
    expect(normalizeHost('EXAMPLE.com.')).toEqual({ kind: 'name', host: 'example.com' });
    expect(normalizeHost('ex%61mple.com')).toEqual({ kind: 'name', host: 'example.com' });
    expect(normalizeHost('１２７.０.０.１')).toMatchObject({ kind: 'ip', host: '127.0.0.1' });
    expect(normalizeHost('%31%32%37.0.0.1')).toMatchObject({ kind: 'ip', host: '127.0.0.1' });
    expect(normalizeHost('[::FFFF:127.0.0.1]')).toMatchObject({
      kind: 'ip',
      host: '::ffff:7f00:1',
      family: 6,
    });
    expect(normalizeHost('::1')).toMatchObject({ kind: 'ip', host: '::1' });
  });

  it('parses CONNECT authorities and requires a port', () => {
    expect(parseConnectAuthority('example.com:443')).toMatchObject({
      host: { host: 'example.com' },
      port: 443,
    });
    expect(parseConnectAuthority('[::1]:8443')).toMatchObject({ host: { host: '::1' }, port: 8443 });
    for (const bad of [
      'example.com',
      'example.com:',
      'example.com:0',
      'a@b:443',
      'a/b:443',
      '[::1]',
      '[::1]x:1',
      '::1:443',
    ]) {
      expect(parseConnectAuthority(bad), bad).toBeNull();
    }
  });
});

describe('IPv4 inside IPv6: what rules compare', () => {
  const bytesOf = (s: string) => {
    const ip = parseIp(s);
    if (!ip) throw new Error(`not an IP: ${s}`);
    return ip.bytes;
  };

  it.each([
    ['::ffff:203.0.113.7', 'mapped', '203.0.113.7'],
    ['::ffff:cb00:7107', 'mapped', '203.0.113.7'],
    ['0:0:0:0:0:FFFF:CB00:7107', 'mapped', '203.0.113.7'],
    ['::203.0.113.7', 'compatible', '203.0.113.7'],
    ['::ffff:0:203.0.113.7', 'siit', '203.0.113.7'],
    ['64:ff9b::203.0.113.7', 'nat64', '203.0.113.7'],
    ['64:ff9b::cb00:7107', 'nat64', '203.0.113.7'],
    ['64:ff9b:1::cb00:7107', 'nat64-local', '203.0.113.7'],
    ['64:ff9b:1:cb00:71:700::', 'nat64-local', '203.0.113.7'],
  ])('%s is %s and matches rules as %s', (input, form, v4) => {
    const b = bytesOf(input);
    expect(embeddedIPv4(b)?.form).toBe(form);
    expect(ruleAddress(b)).toBe(v4);
    expect(denyAddresses(b)).toContain(v4);
  });

  it('6to4 is a different destination: deny rules see through it, allow rules do not', () => {
    const b = bytesOf('2002:cb00:7107::1');
    expect(embeddedIPv4(b)).toMatchObject({ form: '6to4', sameDestination: false });
    expect(ruleAddress(b)).toBe('2002:cb00:7107::1');
    expect(denyAddresses(b)).toEqual(['2002:cb00:7107::1', '203.0.113.7']);
  });

  it('::, ::1 and ordinary addresses embed nothing', () => {
    for (const s of ['::', '::1', '2001:db8::1', 'fe80::1', '203.0.113.7']) {
      expect(embeddedIPv4(bytesOf(s)), s).toBeNull();
      expect(ruleAddress(bytesOf(s))).toBe(parseIp(s)?.text);
    }
  });

  it('dials an IPv4-mapped or -compatible address as IPv4, anything else as written', () => {
    expect(dialForm(parseIp('::ffff:127.0.0.1')!)).toMatchObject({ family: 4, text: '127.0.0.1' });
    expect(dialForm(parseIp('::7f00:1')!)).toMatchObject({ family: 4, text: '127.0.0.1' });
    expect(dialForm(parseIp('64:ff9b::7f00:1')!)).toMatchObject({ family: 6, text: '64:ff9b::7f00:1' });
  });
});
