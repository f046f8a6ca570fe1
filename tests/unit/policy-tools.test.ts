import { describe, expect, it } from 'vitest';
import {
  checkPolicy,
  createPolicyEngine,
  globToRegExp,
  matchesGlob,
  parseRule,
} from '../../src/host/policy/index.js';
import { hostMatches } from '../../src/host/policy/tool-policy.js';

describe('rules', () => {
  it('parses every rule shape', () => {
    expect(parseRule('Bash')).toMatchObject({ kind: 'bash', words: null });
    expect(parseRule('Bash(git push:*)')).toMatchObject({
      kind: 'bash',
      words: ['git', 'push'],
      prefix: true,
    });
    expect(parseRule('Bash(npm test)')).toMatchObject({
      kind: 'bash',
      words: ['npm', 'test'],
      prefix: false,
    });
    expect(parseRule('Bash(/usr/bin/git status)')).toMatchObject({
      words: ['git', 'status'],
      path: '/usr/bin/git',
    });
    expect(parseRule('Read(.env)')).toMatchObject({ kind: 'path', access: 'read', glob: '.env' });
    expect(parseRule('write_file')).toMatchObject({ kind: 'tool', tool: 'write_file' });
    expect(() => parseRule('Read()')).toThrowError(/needs a path glob/);
    expect(() => parseRule('Bash()')).toThrowError(/no command words/);
    expect(() => parseRule('Foo(bar)')).toThrowError(/only Bash, Read, Write and Edit/);
    expect(() => parseRule('Bash(rm')).toThrowError(/is not a rule/);
  });

  it('engine construction fails on a bad rule or regex, naming it', () => {
    expect(() => createPolicyEngine({ policy: { deny: ['Nope(x)'] } })).toThrowError(
      /policy\.deny: .*Nope\(x\)/,
    );
    expect(() => createPolicyEngine({ policy: { blockedPatterns: ['('] } })).toThrowError(
      /blockedPatterns entry "\(" is not a valid regular expression/,
    );
  });

  it('prefix rules match on whole words, exact rules on all words', () => {
    const e = createPolicyEngine({ policy: { allow: ['Bash(git diff:*)', 'Bash(npm test)'] } });
    const eff = (command: string) =>
      e.evaluate({ kind: 'shell', command }, { context: 'agent', workspace: '/w' }).effect;
    expect(eff('git diff')).toBe('allow');
    expect(eff('git diff --stat')).toBe('allow');
    expect(eff('git diffx')).toBe('ask');
    expect(eff('git')).toBe('ask');
    expect(eff('npm test')).toBe('allow');
    expect(eff('npm  test')).toBe('allow');
    expect(eff("npm 'test'")).toBe('allow');
    expect(eff('npm test x')).toBe('ask');
    expect(eff('npm $T')).toBe('ask');
  });
});

describe('glob', () => {
  it.each([
    ['.env', '.env', true],
    ['.env', 'a/b/.env', true],
    ['.env', '.env.local', false],
    ['/.env', 'a/.env', false],
    ['.git/**', '.git/config', true],
    ['.git/**', '.git/hooks/pre-commit', true],
    ['.git/**', 'sub/.git/config', false],
    ['src/*.ts', 'src/a.ts', true],
    ['src/*.ts', 'src/x/a.ts', false],
    ['src/**/*.ts', 'src/a.ts', true],
    ['src/**/*.ts', 'src/x/y/a.ts', true],
    ['**/secret*', 'a/b/secret.txt', true],
    ['*.pe?', 'k.pem', true],
    ['[ab].txt', 'a.txt', true],
    ['[ab].txt', 'c.txt', false],
    ['docs/', 'docs/x/y.md', true],
    ['a+b(c).txt', 'a+b(c).txt', true],
  ])('%j vs %j → %s', (pattern, path, expected) => {
    expect(matchesGlob(path, pattern)).toBe(expected);
  });
  it('compiles to an anchored RegExp', () => {
    expect(globToRegExp('src/*.ts').source.startsWith('^')).toBe(true);
  });
});

describe('network tools and egress lists', () => {
  const e = createPolicyEngine({
    egress: { allow: ['docs.example.com', '*.npmjs.org'], deny: ['evil.example.com'] },
  });
  const nav = (url: string, context: 'agent' | 'gateway' | 'local' = 'agent') =>
    e.evaluate(
      { kind: 'tool', tool: 'browser_navigate', risk: 'network', input: { url } },
      { context, workspace: '/w' },
    );
  it('allows an egress-allowed host for the agent, asks otherwise, denies denied hosts everywhere', () => {
    expect(nav('https://docs.example.com/x')).toMatchObject({
      effect: 'allow',
      rule: 'egress.allow:docs.example.com',
    });
    expect(nav('https://registry.npmjs.org/')).toMatchObject({ effect: 'allow' });
    expect(nav('https://npmjs.org/')).toMatchObject({ effect: 'ask' });
    expect(nav('https://other.com/')).toMatchObject({ effect: 'ask', layer: 'tool' });
    expect(nav('file:///etc/passwd')).toMatchObject({ effect: 'ask' });
    expect(nav('https://docs.example.com/x', 'gateway')).toMatchObject({ effect: 'ask' });
    for (const c of ['agent', 'gateway', 'local'] as const)
      expect(nav('https://evil.example.com/', c)).toMatchObject({ effect: 'deny' });
  });
  it('hostMatches handles wildcards, case and trailing dots', () => {
    expect(hostMatches('A.Example.COM.', '*.example.com')).toBe(true);
    expect(hostMatches('example.com', '*.example.com')).toBe(false);
    expect(hostMatches('badexample.com', '*.example.com')).toBe(false);
    expect(hostMatches('api.x.io', 'api.x.io:443')).toBe(true);
  });
});

describe('tool rules and defaults', () => {
  const e = createPolicyEngine({
    policy: { allow: ['delete_file', 'Write(build/**)'], deny: ['clipboard'], ask: ['Edit(package.json)'] },
  });
  const ev = (
    tool: string,
    risk: 'read' | 'write' | 'destructive' | 'system' | 'network',
    context: 'agent' | 'gateway' | 'local',
    paths: { path: string; access: 'read' | 'write' | 'edit' }[] = [],
  ) => e.evaluate({ kind: 'tool', tool, risk, input: {}, paths }, { context, workspace: process.cwd() });
  it('applies tool-name and path rules, then risk defaults', () => {
    expect(ev('delete_file', 'destructive', 'agent')).toMatchObject({
      effect: 'allow',
      layer: 'user',
      rule: 'delete_file',
    });
    expect(ev('rename', 'destructive', 'agent')).toMatchObject({ effect: 'ask', layer: 'tool' });
    expect(ev('clipboard', 'system', 'local')).toMatchObject({
      effect: 'deny',
      layer: 'user',
      rule: 'clipboard',
    });
    expect(ev('write_file', 'write', 'gateway', [{ path: 'build/x', access: 'write' }])).toMatchObject({
      effect: 'allow',
      rule: 'Write(build/**)',
    });
    expect(ev('edit_file', 'write', 'agent', [{ path: 'package.json', access: 'edit' }])).toMatchObject({
      effect: 'ask',
      layer: 'user',
    });
    expect(ev('write_file', 'write', 'agent')).toMatchObject({ effect: 'ask' });
    expect(ev('notify', 'system', 'gateway')).toMatchObject({ effect: 'deny', rule: 'gateway-system' });
    expect(ev('anything', 'destructive', 'local').effect).toBe('allow');
  });
});

describe('checkPolicy (for `cowork-vm policy check`)', () => {
  it('uses defaults and the agent context when not told otherwise', () => {
    expect(checkPolicy({ request: 'ls', workspace: '/w' }).effect).toBe('ask');
    expect(checkPolicy({ request: 'ls', workspace: '/w', context: 'local' }).effect).toBe('allow');
    expect(checkPolicy({ request: 'sudo ls', workspace: '/w', context: 'local' })).toMatchObject({
      effect: 'deny',
      rule: 'builtin:sudo',
    });
    expect(
      checkPolicy({ request: 'ls', workspace: '/w', config: { policy: { allow: ['Bash(ls)'] } } }).effect,
    ).toBe('allow');
  });
});
