import { describe, expect, it } from 'vitest';
import {
  compileRules,
  decideEgress,
  denyMessage,
  type EgressKind,
  egressOptionsFromConfig,
  parseRule,
} from '../../src/host/egress/index.js';
import { CoworkError } from '../../src/host/errors.js';

type Rules = Parameters<typeof decideEgress>[1];

/** The way a client asks for a port by default: plain HTTP for 80, CONNECT otherwise. */
const kindFor = (port: number): EgressKind => (port === 80 ? 'http' : 'connect');

const decide = (host: string, port: number, rules: Rules, approved?: Set<string>, kind?: EgressKind) =>
  decideEgress({ host, port, kind: kind ?? kindFor(port) }, rules, approved);

const effect = (host: string, port: number, rules: Rules, approved?: Set<string>, kind?: EgressKind) =>
  decide(host, port, rules, approved, kind).effect;

describe('decideEgress', () => {
  it('denies everything when there is no config', () => {
    expect(decide('example.com', 443, undefined)).toMatchObject({ effect: 'deny', stage: 'default' });
    expect(effect('example.com', 80, {})).toBe('deny');
    expect(effect('127.0.0.1', 80, {})).toBe('deny');
  });

  it('exact host entries match only that host', () => {
    const rules = { allow: ['example.com'] };
    expect(decide('example.com', 443, rules)).toMatchObject({ effect: 'allow', rule: 'example.com' });
    expect(effect('EXAMPLE.COM', 443, rules)).toBe('allow');
    expect(effect('example.com.', 443, rules)).toBe('allow');
    expect(effect('www.example.com', 443, rules)).toBe('deny');
    expect(effect('notexample.com', 443, rules)).toBe('deny');
    expect(effect('example.com.evil.test', 443, rules)).toBe('deny');
  });

  it('"*.example.com" means subdomains only, at any depth', () => {
    const rules = { allow: ['*.example.com'] };
    expect(effect('www.example.com', 443, rules)).toBe('allow');
    expect(effect('a.b.example.com', 80, rules)).toBe('allow');
    expect(effect('example.com', 443, rules)).toBe('deny');
    expect(effect('badexample.com', 443, rules)).toBe('deny');
    expect(effect('example.com.evil.test', 443, rules)).toBe('deny');
  });

  it('".example.com" means the domain and its subdomains', () => {
    const rules = { allow: ['.example.com'] };
    expect(effect('example.com', 443, rules)).toBe('allow');
    expect(effect('api.example.com', 443, rules)).toBe('allow');
    expect(effect('badexample.com', 443, rules)).toBe('deny');
  });

  it('allowAll allows every host on the standard port of each way of asking, and nothing else', () => {
    const all = { allowAll: true };
    expect(decide('anything.test', 443, all)).toMatchObject({ effect: 'allow', rule: 'allowAll' });
    expect(effect('anything.test', 80, all, undefined, 'http')).toBe('allow');
    expect(effect('anything.test', 80, all, undefined, 'connect')).toBe('deny');
    expect(effect('anything.test', 443, all, undefined, 'http')).toBe('deny');
    expect(effect('anything.test', 8080, all)).toBe('deny');
    expect(effect('bad.test', 443, { ...all, deny: ['bad.test'] })).toBe('deny');
    expect(effect('anything.test', 443, { allowAll: false })).toBe('deny');
  });

  it('a port-less allow entry means 80 for plain HTTP and 443 for CONNECT, never the other way', () => {
    const rules = { allow: ['example.com', '.example.org', '*.example.net', '203.0.113.7'] };
    for (const host of [
      'example.com',
      'www.example.org',
      'a.example.net',
      '203.0.113.7',
      '[::ffff:cb00:7107]',
    ]) {
      expect(effect(host, 443, rules, undefined, 'connect'), `CONNECT ${host}:443`).toBe('allow');
      expect(effect(host, 80, rules, undefined, 'http'), `GET http://${host}/`).toBe('allow');
      expect(decide(host, 80, rules, undefined, 'connect'), `CONNECT ${host}:80`).toMatchObject({
        effect: 'deny',
        stage: 'port',
      });
      expect(effect(host, 443, rules, undefined, 'http'), `GET http://${host}:443/`).toBe('deny');
    }
    // Neither a task grant nor ask opens the other port.
    expect(effect('example.com', 80, { ask: true }, new Set(['example.com']), 'connect')).toBe('deny');
    // A rule that names the port allows it whichever way the guest asks.
    expect(effect('example.com', 80, { allow: ['example.com:80'] }, undefined, 'connect')).toBe('allow');
    expect(effect('example.com', 443, { allow: ['example.com:443'] }, undefined, 'http')).toBe('allow');
  });

  it('restricts ports to 80/443 unless a rule names the port', () => {
    expect(effect('example.com', 8443, { allow: ['example.com'] })).toBe('deny');
    expect(decide('example.com', 22, { allow: ['example.com'], ask: true })).toMatchObject({
      effect: 'deny',
      stage: 'port',
    });
    const rules = { allow: ['example.com:8443'] };
    expect(effect('example.com', 8443, rules)).toBe('allow');
    expect(effect('example.com', 8443, rules, undefined, 'http')).toBe('allow');
    expect(effect('example.com', 443, rules)).toBe('deny');
    expect(effect('example.com', 8444, rules)).toBe('deny');
    expect(effect('x.example.com', 8443, { allow: ['*.example.com:8443'] })).toBe('allow');
  });

  it('the deny list wins over the allow list, approvals and ask', () => {
    const rules = { allow: ['.example.com'], deny: ['bad.example.com'], ask: true };
    expect(decide('bad.example.com', 443, rules)).toMatchObject({ effect: 'deny', stage: 'deny-list' });
    expect(effect('BAD.example.com.', 443, rules)).toBe('deny');
    expect(effect('bad.example.com', 443, rules, new Set(['bad.example.com']))).toBe('deny');
    expect(effect('good.example.com', 443, rules)).toBe('allow');
    // A port-less deny entry covers every port, even one an allow rule names.
    expect(
      effect('bad.example.com', 8443, { allow: ['bad.example.com:8443'], deny: ['bad.example.com'] }),
    ).toBe('deny');
    // A deny entry with a port covers only that port.
    expect(effect('example.com', 443, { allow: ['example.com'], deny: ['example.com:80'] })).toBe('allow');
    expect(effect('example.com', 80, { allow: ['example.com'], deny: ['example.com:80'] })).toBe('deny');
  });

  it('asks for unlisted hosts when ask is on, and honours hosts approved for the task', () => {
    expect(decide('new.test', 443, { ask: true })).toMatchObject({ effect: 'ask', stage: 'ask' });
    expect(decide('new.test', 443, { ask: false }, new Set(['new.test']))).toMatchObject({
      effect: 'allow',
      stage: 'task',
    });
    expect(effect('other.test', 443, { ask: false }, new Set(['new.test']))).toBe('deny');
  });

  it('matches IP literal rules in any spelling', () => {
    const rules = { allow: ['127.0.0.1:8080', '[::1]:9090', '2001:db8::1'] };
    for (const h of ['127.0.0.1', '2130706433', '0x7f.0.0.1', '0177.0.0.1', '127.1', '0x7f000001']) {
      expect(effect(h, 8080, rules), h).toBe('allow');
    }
    expect(effect('[::1]', 9090, rules)).toBe('allow');
    expect(effect('[0:0:0:0:0:0:0:1]', 9090, rules)).toBe('allow');
    expect(effect('[2001:db8:0::1]', 443, rules)).toBe('allow');
    expect(effect('127.0.0.2', 8080, rules)).toBe('deny');
    expect(effect('127.0.0.1', 8081, rules)).toBe('deny');
  });

  it('denies hosts that are not valid', () => {
    for (const h of [
      '',
      'a b',
      'a/b',
      'user@host',
      'host#x',
      '1.2.3.4.5',
      '256.0.0.1',
      '[fe80::1%eth0]',
      'a..b',
    ]) {
      expect(decide(h, 443, { allowAll: true }), h).toMatchObject({ effect: 'deny', stage: 'invalid' });
    }
    expect(effect('example.com', 0, { allowAll: true })).toBe('deny');
    expect(effect('example.com', 70000, { allowAll: true })).toBe('deny');
  });
});

describe('egress rule syntax', () => {
  it('parses the documented forms', () => {
    expect(parseRule('*.example.com', 'allow').pattern).toEqual({
      kind: 'subdomains',
      domain: 'example.com',
    });
    expect(parseRule('.Example.com', 'allow').pattern).toEqual({ kind: 'domain', domain: 'example.com' });
    expect(parseRule('example.com:8443', 'allow')).toMatchObject({ port: 8443 });
    expect(parseRule('[::1]:8080', 'allow')).toMatchObject({
      port: 8080,
      pattern: { host: '::1', isIp: true },
    });
    expect(parseRule('::1', 'allow')).toMatchObject({ pattern: { host: '::1', isIp: true } });
  });

  it('rejects malformed entries with a message naming the entry', () => {
    for (const bad of [
      '',
      'exa mple.com',
      'foo.*.com',
      '*example.com',
      '*.127.0.0.1',
      'host:0',
      'host:99999',
      'a:b:c',
      'http://x',
    ]) {
      let caught: unknown;
      try {
        compileRules({ allow: [bad] });
      } catch (err) {
        caught = err;
      }
      expect(CoworkError.is(caught, 'invalidArgument'), bad).toBe(true);
      expect((caught as Error).message).toContain('egress.allow entry');
    }
  });

  it('rejects unknown keys and wrong types', () => {
    expect(() => compileRules({ allow: 'example.com' } as never)).toThrow(CoworkError);
    expect(() => compileRules({ allow: [], extra: 1 } as never)).toThrow(CoworkError);
  });
});

describe('egressOptionsFromConfig', () => {
  it('maps the [egress] section and keeps the deny-by-default of an empty one', () => {
    expect(egressOptionsFromConfig(undefined)).toEqual({
      rules: { allow: [], deny: [], ask: false, allowAll: false },
    });
    const opts = egressOptionsFromConfig({
      allow: ['.example.com'],
      deny: ['bad.example.com'],
      ask: true,
      testResolve: { 'a.test': '127.0.0.1' },
    });
    expect(opts.testResolve).toEqual({ 'a.test': '127.0.0.1' });
    expect(decide('example.com', 443, opts.rules).effect).toBe('allow');
    expect(decide('bad.example.com', 443, opts.rules).effect).toBe('deny');
    expect(decide('other.test', 443, opts.rules).effect).toBe('ask');
  });
});

describe('IP rules and the IPv6 forms of an IPv4 address', () => {
  it('a deny entry for an IPv4 address denies its mapped, compatible, SIIT, NAT64 and 6to4 forms', () => {
    const rules = { allow: ['203.0.113.7', '*:8443'], deny: ['203.0.113.7'] };
    for (const h of [
      '203.0.113.7',
      '3405803783',
      '0xcb.0x0.0x71.0x7',
      '[::ffff:203.0.113.7]',
      '[::ffff:cb00:7107]',
      '[::cb00:7107]',
      '[::ffff:0:cb00:7107]',
      '[64:ff9b::cb00:7107]',
      '[64:ff9b:1::cb00:7107]',
      '[2002:cb00:7107::]',
    ]) {
      expect(decide(h, 443, rules), h).toMatchObject({ effect: 'deny', stage: 'deny-list' });
      expect(decide(h, 8443, rules), h).toMatchObject({ effect: 'deny', stage: 'deny-list' });
    }
  });

  it('a deny entry written in an IPv6 form denies the IPv4 address too', () => {
    for (const entry of ['[::ffff:cb00:7107]', '::ffff:203.0.113.7', '[64:ff9b::cb00:7107]']) {
      const rules = { allow: ['203.0.113.7'], deny: [entry] };
      expect(effect('203.0.113.7', 443, rules), entry).toBe('deny');
      expect(effect('[::ffff:203.0.113.7]', 443, rules), entry).toBe('deny');
    }
  });

  it('an allow entry for an IPv4 address covers the forms that reach it, and not 6to4', () => {
    const rules = { allow: ['203.0.113.7'] };
    for (const h of ['[::ffff:cb00:7107]', '[::ffff:0:cb00:7107]', '[64:ff9b::cb00:7107]']) {
      expect(effect(h, 443, rules), h).toBe('allow');
    }
    expect(effect('[2002:cb00:7107::]', 443, rules)).toBe('deny');
    expect(effect('203.0.113.8', 443, rules)).toBe('deny');
  });

  it('task grants are keyed by the address rules see', () => {
    const granted = new Set(['203.0.113.7']);
    expect(effect('[::ffff:cb00:7107]', 443, { ask: false }, granted)).toBe('allow');
  });
});

describe('allow entries that cover a public suffix', () => {
  const refused = (entry: string) => {
    try {
      compileRules({ allow: [entry] });
    } catch (err) {
      return (err as Error).message;
    }
    return undefined;
  };

  it.each([
    '.com',
    '*.com',
    'com',
    '.co.uk',
    '*.co.uk',
    'co.uk',
    '*.github.io',
    '.github.io',
    'github.io',
    '*.s3.amazonaws.com',
    '*.amazonaws.com',
    '.blogspot.com',
    '*.foo.ck',
    '.COM',
    '*.com:8443',
    '.xn--p1ai',
    '*',
  ])('refuses %s, naming the entry and the way to allow everything', (entry) => {
    const msg = refused(entry);
    expect(msg, entry).toContain(`egress.allow entry ${JSON.stringify(entry)} is refused`);
    expect(msg).toContain('allowAll = true');
  });

  it.each([
    'example.com',
    '.example.com',
    '*.example.co.uk',
    'user.github.io',
    '*.user.github.io',
    '.www.ck',
    '.test',
    '*.internal',
    'localhost',
    '*:8443',
  ])('accepts %s', (entry) => {
    expect(refused(entry), entry).toBeUndefined();
  });

  it('deny entries may be as broad as wanted', () => {
    expect(compileRules({ deny: ['.com', '*.github.io', '*'] }).deny).toHaveLength(3);
    expect(effect('x.github.io', 443, { allowAll: true, deny: ['*.github.io'] })).toBe('deny');
  });
});

describe('denyMessage', () => {
  it('suggests an entry that would allow the refused request, port included unless standard for it', () => {
    const base = { host: 'site.test', stage: 'port', reason: 'r' };
    expect(denyMessage({ ...base, what: 'CONNECT site.test:80', port: 80 })).toContain(
      'allow = ["site.test:80"]',
    );
    expect(denyMessage({ ...base, what: 'CONNECT site.test:443', port: 443 })).toContain(
      'allow = ["site.test"]',
    );
    expect(denyMessage({ ...base, what: 'GET http://site.test:443/', port: 443 })).toContain(
      'allow = ["site.test:443"]',
    );
    expect(denyMessage({ ...base, what: 'GET http://site.test/', port: 80 })).toContain(
      'allow = ["site.test"]',
    );
  });
});
