import { describe, expect, it } from 'vitest';
import {
  checkCredentialedRequest,
  compileCredentialRule,
  pathMatches,
} from '../../src/host/egress/credentials.js';

const rule = compileCredentialRule(
  {
    host: 'API.test',
    header: 'Authorization',
    value: 'Bearer {secret}',
    secret: 'gh',
    methods: ['get'],
    paths: ['/repos/me/*'],
  },
  'tok',
);
const req = (target: string, headers: Record<string, string> = {}, method = 'GET') =>
  checkCredentialedRequest(rule, { method, target, headers: { host: 'api.test', ...headers } });

describe('credential rules', () => {
  it("compile the header value, lowercase names, and always refuse the rule's own header", () => {
    expect(rule).toMatchObject({
      host: 'api.test',
      header: 'authorization',
      headerValue: 'Bearer tok',
      secretName: 'gh',
    });
    const custom = compileCredentialRule(
      { host: 'x.test', header: 'X-Token', value: '{secret}', secret: 'x', refuseHeaders: ['Cookie'] },
      'v',
    );
    expect(custom.refuseHeaders.sort()).toEqual(['cookie', 'x-token']);
  });

  it('refuse a value without {secret} and a secret a header cannot carry', () => {
    expect(() =>
      compileCredentialRule({ host: 'a.test', header: 'a', value: 'Bearer', secret: 's' }, 'v'),
    ).toThrow(/has no \{secret\}/);
    expect(() =>
      compileCredentialRule(
        { host: 'a.test', header: 'a', value: '{secret}', secret: 's' },
        'v\r\nX-Evil: 1',
      ),
    ).toThrow(/line breaks/);
  });

  it('match paths with * over any characters, and nothing else', () => {
    expect(pathMatches('/repos/me/*', '/repos/me/x/issues')).toBe(true);
    expect(pathMatches('/repos/me/*', '/repos/meet/x')).toBe(false);
    expect(pathMatches('/a.b', '/aXb')).toBe(false);
    expect(pathMatches('/echo*', '/echo')).toBe(true);
  });

  it('allow what the rule names and refuse the rest with a reason', () => {
    expect(req('/repos/me/x?page=2')).toEqual({ ok: true });
    expect(req('/repos/me/x', {}, 'POST')).toMatchObject({
      ok: false,
      status: 403,
      reason: /POST is not among/,
    });
    expect(req('/repos/other/x')).toMatchObject({ ok: false, status: 403, reason: /outside the paths/ });
    expect(req('/repos/me/x', { authorization: 'Bearer mine' })).toMatchObject({ ok: false, status: 403 });
    expect(req('/repos/me/x', { cookie: 'a=b' })).toMatchObject({ ok: false, reason: /own cookie header/ });
    expect(req('/repos/me/x', { host: 'evil.test' })).toMatchObject({ ok: false, status: 421 });
    expect(req('/repos/me/x', { host: 'api.test:443' })).toEqual({ ok: true });
    expect(req('https://evil.test/repos/me/x')).toMatchObject({ ok: false, status: 400 });
  });

  it('refuse paths an upstream could read as another path', () => {
    for (const p of [
      '/repos/me/../x',
      '/repos/me/./x',
      '/repos/me//x',
      '/repos/me/%2E%2E/x',
      '/repos/me/a%2fb',
      '/repos/me/a\\b',
    ]) {
      expect(req(p), p).toMatchObject({ ok: false, status: 403 });
    }
  });
});
