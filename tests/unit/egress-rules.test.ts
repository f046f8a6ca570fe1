import { describe, expect, it } from 'vitest';
import {
  compileRules,
  decideEgress,
  egressOptionsFromConfig,
  parseRule,
} from '../../src/host/egress/index.js';
import { CoworkError } from '../../src/host/errors.js';

const effect = (
  host: string,
  port: number,
  rules: Parameters<typeof decideEgress>[2],
  approved?: Set<string>,
) => decideEgress(host, port, rules, approved).effect;

describe('decideEgress', () => {
  it('denies everything when there is no config', () => {
    expect(decideEgress('example.com', 443, undefined)).toMatchObject({ effect: 'deny', stage: 'default' });
    expect(effect('example.com', 80, {})).toBe('deny');
    expect(effect('127.0.0.1', 80, {})).toBe('deny');
  });

  it('exact host entries match only that host', () => {
    const rules = { allow: ['example.com'] };
    expect(decideEgress('example.com', 443, rules)).toMatchObject({ effect: 'allow', rule: 'example.com' });
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

  it('"*" allows every host on 80/443 only', () => {
    expect(effect('anything.test', 443, { allow: ['*'] })).toBe('allow');
    expect(effect('anything.test', 8080, { allow: ['*'] })).toBe('deny');
  });

  it('restricts ports to 80/443 unless a rule names the port', () => {
    expect(effect('example.com', 8443, { allow: ['example.com'] })).toBe('deny');
    expect(decideEgress('example.com', 22, { allow: ['example.com'], ask: true })).toMatchObject({
      effect: 'deny',
      stage: 'port',
    });
    const rules = { allow: ['example.com:8443'] };
    expect(effect('example.com', 8443, rules)).toBe('allow');
    expect(effect('example.com', 443, rules)).toBe('deny');
    expect(effect('example.com', 8444, rules)).toBe('deny');
    expect(effect('x.example.com', 8443, { allow: ['*.example.com:8443'] })).toBe('allow');
  });

  it('the deny list wins over the allow list, approvals and ask', () => {
    const rules = { allow: ['.example.com'], deny: ['bad.example.com'], ask: true };
    expect(decideEgress('bad.example.com', 443, rules)).toMatchObject({ effect: 'deny', stage: 'deny-list' });
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
    expect(decideEgress('new.test', 443, { ask: true })).toMatchObject({ effect: 'ask', stage: 'ask' });
    expect(decideEgress('new.test', 443, { ask: false }, new Set(['new.test']))).toMatchObject({
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
      expect(decideEgress(h, 443, { allow: ['*'] }), h).toMatchObject({ effect: 'deny', stage: 'invalid' });
    }
    expect(effect('example.com', 0, { allow: ['*'] })).toBe('deny');
    expect(effect('example.com', 70000, { allow: ['*'] })).toBe('deny');
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
    expect(egressOptionsFromConfig(undefined)).toEqual({ rules: { allow: [], deny: [], ask: false } });
    const opts = egressOptionsFromConfig({
      allow: ['.example.com'],
      deny: ['bad.example.com'],
      ask: true,
      testResolve: { 'a.test': '127.0.0.1' },
    });
    expect(opts.testResolve).toEqual({ 'a.test': '127.0.0.1' });
    expect(decideEgress('example.com', 443, opts.rules).effect).toBe('allow');
    expect(decideEgress('bad.example.com', 443, opts.rules).effect).toBe('deny');
    expect(decideEgress('other.test', 443, opts.rules).effect).toBe('ask');
  });
});
