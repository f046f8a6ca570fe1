import { linkSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import { assertStillInside, checkPath, createPolicyEngine } from '../../src/host/policy/index.js';
import { ProtectedPaths } from '../../src/host/workspace/index.js';

/**
 * Path-escape corpus against a real temp workspace with real symlinks:
 *   ws/src/a.ts, ws/sub/dir/, ws/inside-link -> /workspace/src, ws/host-link -> <host ws>/src,
 *   ws/out-link -> outside/, ws/rel-dangling -> nope, ws/proc-cwd -> /proc/self/cwd,
 *   ws/up-proj -> ../ws/src (leaves /workspace in the guest),
 *   ws/sub/deep-out -> ../../outside, ws/passwd-link -> outside/secret, ws/dangling -> outside/nope,
 *   ws/rel-in -> ./src/a.ts, ws/loop-a <-> ws/loop-b, ws/ws-alias -> <ws via its real path>
 */
let root = '';
let ws = '';
let outside = '';

beforeAll(() => {
  root = realpathSync(mkdtempSync(join(tmpdir(), 'cowork-pathguard-')));
  ws = join(root, 'ws');
  outside = join(root, 'outside');
  mkdirSync(join(ws, 'src'), { recursive: true });
  mkdirSync(join(ws, 'sub', 'dir'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(ws, 'src', 'a.ts'), 'x');
  writeFileSync(join(outside, 'secret'), 's');
  symlinkSync('/workspace/src', join(ws, 'inside-link'));
  symlinkSync(join(ws, 'src'), join(ws, 'host-link'));
  symlinkSync('nope', join(ws, 'rel-dangling'));
  symlinkSync('/proc/self/cwd', join(ws, 'proc-cwd'));
  symlinkSync('../ws/src', join(ws, 'up-proj'));
  symlinkSync('//workspace//src/', join(ws, 'sub', 'slashy'));
  symlinkSync('../inside-link/a.ts', join(ws, 'sub', 'chain'));
  symlinkSync(outside, join(ws, 'out-link'));
  symlinkSync('../../outside', join(ws, 'sub', 'deep-out'));
  symlinkSync(join(outside, 'secret'), join(ws, 'passwd-link'));
  symlinkSync(join(outside, 'nope'), join(ws, 'dangling'));
  symlinkSync('./src/a.ts', join(ws, 'rel-in'));
  symlinkSync('loop-b', join(ws, 'loop-a'));
  symlinkSync('loop-a', join(ws, 'loop-b'));
  symlinkSync('/', join(ws, 'sub', 'root-link'));
  symlinkSync(join(outside, 'nope-dir'), join(ws, 'sub', 'dangling-dir'));
});

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

const DENIED: [string, RegExp][] = [
  ['../outside/secret', /leaves the workspace/],
  ['..', /leaves the workspace/],
  ['src/../../outside', /leaves the workspace/],
  ['sub/dir/../../../x', /leaves the workspace/],
  ['./../ws/../outside', /leaves the workspace/],
  ['/etc/passwd', /absolute path outside/],
  ['/workspace/../etc/passwd', /leaves the workspace/],
  ['/workspace/../../x', /leaves the workspace/],
  ['/tmp', /absolute path outside/],
  ['/workspacex/a', /absolute path outside/],
  ['out-link', /points outside the workspace/],
  ['out-link/secret', /points outside the workspace/],
  ['out-link/new-file', /points outside the workspace/],
  ['sub/deep-out/secret', /points outside the workspace/],
  ['passwd-link', /points outside the workspace/],
  ['/workspace/passwd-link', /points outside the workspace/],
  // host-absolute link targets name guest paths outside /workspace (they were "dangling" before)
  ['dangling', /points outside the workspace/],
  ['sub/dangling-dir/x', /points outside the workspace/],
  ['rel-dangling', /dangling symbolic link/],
  ['loop-a', /more than 40 symbolic links/],
  ['host-link/a.ts', /points outside the workspace .*only \/workspace/],
  ['proc-cwd/src/a.ts', /points outside the workspace \(to \/proc\/self\/cwd/],
  ['up-proj/a.ts', /up-proj is a symbolic link that points outside the workspace/],
  [join('/', 'home', 'me', 'proj', 'a.txt'), /absolute path outside \/workspace/],
  ['//workspace/../etc/passwd', /leaves the workspace/],
  ['sub/root-link/etc/passwd', /points outside the workspace/],
  ['inside-link/../../outside/secret', /leaves the workspace/],
  ['a\0b', /NUL byte/],
  [`${'a/'.repeat(2100)}x`, /longer than 4096 bytes/],
  [`${'x'.repeat(256)}`, /component longer than 255 bytes/],
  ['new-dir/../../outside', /".." below a path that does not exist/],
];

const ALLOWED: [string, string, boolean][] = [
  ['src/a.ts', 'src/a.ts', true],
  ['./src/a.ts', 'src/a.ts', true],
  ['src//a.ts', 'src/a.ts', true],
  ['/workspace/src/a.ts', 'src/a.ts', true],
  ['//workspace//src/a.ts', 'src/a.ts', true],
  ['sub/slashy/a.ts', 'src/a.ts', true],
  ['sub/chain', 'src/a.ts', true],
  ['/workspace', '', true],
  ['.', '', true],
  ['src/../src/a.ts', 'src/a.ts', true],
  ['inside-link/a.ts', 'src/a.ts', true],
  ['rel-in', 'src/a.ts', true],
  ['sub/dir', 'sub/dir', true],
  ['sub/dir/..', 'sub', true],
  ['new.txt', 'new.txt', false],
  ['sub/new/deeper/file', 'sub/new/deeper/file', false],
  ['inside-link/new.ts', 'src/new.ts', false],
];

describe('path guard: escape corpus with real symlinks', () => {
  it.each(DENIED)('%j is denied', (p, reason) => {
    for (const access of ['read', 'write', 'edit'] as const) {
      const c = checkPath(ws, p, access);
      expect(c.ok).toBe(false);
      expect(c.reason).toMatch(reason);
    }
  });

  it.each(ALLOWED)('%j stays inside as %j', (p, rel, exists) => {
    const c = checkPath(ws, p, 'write');
    expect(c.ok, c.reason).toBe(true);
    expect(c.relative).toBe(rel);
    expect(c.exists).toBe(exists);
    expect(c.recheckAtWrite).toBe(!exists);
    expect(c.resolved.startsWith(ws)).toBe(true);
  });

  it("the host's path of the workspace is refused: in the guest it names a different file", () => {
    const c = checkPath(ws, join(ws, 'src', 'a.ts'), 'read');
    expect(c.ok).toBe(false);
    expect(c.reason).toMatch(/host's path of the workspace.*use a workspace-relative path or \/workspace/);
    expect(checkPath(ws, join(ws, '..', 'outside'), 'read').ok).toBe(false);
  });

  it('records every spelling a request went through (as written, through links, resolved)', () => {
    expect(checkPath(ws, 'sub/chain', 'read').spellings).toEqual(
      expect.arrayContaining(['sub/chain', 'inside-link/a.ts', 'src/a.ts']),
    );
  });

  it('a workspace given through a symlink is resolved to its real path first', () => {
    const alias = join(root, 'ws-alias');
    symlinkSync(ws, alias);
    expect(checkPath(alias, 'src/a.ts', 'read')).toMatchObject({
      ok: true,
      resolved: join(ws, 'src', 'a.ts'),
    });
    expect(checkPath(alias, 'out-link', 'read').ok).toBe(false);
  });

  it('a missing workspace fails closed', () => {
    expect(checkPath(join(root, 'missing'), 'a', 'read')).toMatchObject({ ok: false });
  });
});

describe('path guard: a final component created after the check', () => {
  it('assertStillInside catches a symlink swapped in between check and write', () => {
    const first = checkPath(ws, 'later.txt', 'write');
    expect(first).toMatchObject({ ok: true, exists: false, recheckAtWrite: true });
    symlinkSync(join(outside, 'secret'), join(ws, 'later.txt'));
    expect(() => assertStillInside(ws, 'later.txt')).toThrowError(CoworkError);
    try {
      assertStillInside(ws, 'later.txt');
    } catch (err) {
      expect((err as CoworkError).code).toBe('denied');
      expect((err as CoworkError).message).toMatch(/points outside the workspace/);
    }
  });

  it('assertStillInside catches a parent directory replaced by a symlink', () => {
    mkdirSync(join(ws, 'swap'));
    expect(checkPath(ws, 'swap/file', 'write').ok).toBe(true);
    rmSync(join(ws, 'swap'), { recursive: true });
    symlinkSync(outside, join(ws, 'swap'));
    expect(() => assertStillInside(ws, 'swap/file')).toThrowError(/points outside the workspace/);
  });

  it('assertStillInside passes for a still-new file inside', () => {
    expect(assertStillInside(ws, 'src/brand-new.ts')).toMatchObject({
      ok: true,
      relative: 'src/brand-new.ts',
    });
  });
});

describe('file tools through the policy engine', () => {
  const engine = createPolicyEngine({
    policy: { deny: ['Read(.env)', 'Write(.git/**)'], allow: ['Read(docs/**)'] },
  });
  const tool = (
    tool: string,
    risk: 'read' | 'write' | 'system',
    path: string,
    access: 'read' | 'write',
    context: 'agent' | 'gateway' | 'local' = 'agent',
  ) =>
    engine.evaluate(
      { kind: 'tool', tool, risk, input: { path }, paths: [{ path, access }] },
      { context, workspace: ws },
    );

  it('denies escapes in every context, via the guardrails layer', () => {
    for (const context of ['agent', 'gateway', 'local'] as const) {
      expect(tool('read_file', 'read', 'out-link/secret', 'read', context)).toMatchObject({
        effect: 'deny',
        layer: 'guardrails',
        rule: 'path-guard',
      });
      expect(tool('write_file', 'write', '../x', 'write', context)).toMatchObject({
        effect: 'deny',
        layer: 'guardrails',
      });
    }
  });

  it('applies Read/Write rules to workspace-relative paths at any depth', () => {
    expect(tool('read_file', 'read', '.env', 'read')).toMatchObject({
      effect: 'deny',
      layer: 'user',
      rule: 'Read(.env)',
    });
    expect(tool('read_file', 'read', '/workspace/sub/.env', 'read')).toMatchObject({
      effect: 'deny',
      rule: 'Read(.env)',
    });
    // .git/config itself is protected (guardrails win); the rule covers the rest of .git, nested too
    expect(tool('write_file', 'write', '.git/description', 'write')).toMatchObject({
      effect: 'deny',
      rule: 'Write(.git/**)',
    });
    expect(tool('write_file', 'write', 'sub/.git/description', 'write')).toMatchObject({
      effect: 'deny',
      rule: 'Write(.git/**)',
    });
    expect(tool('write_file', 'write', '.env', 'write').effect).toBe('allow');
  });

  it('uses the risk defaults per context', () => {
    expect(tool('read_file', 'read', 'src/a.ts', 'read').effect).toBe('allow');
    expect(tool('write_file', 'write', 'src/a.ts', 'write').effect).toBe('allow');
    expect(tool('write_file', 'write', 'src/a.ts', 'write', 'gateway')).toMatchObject({
      effect: 'ask',
      layer: 'tool',
    });
    expect(tool('clipboard', 'system', 'src/a.ts', 'read', 'gateway')).toMatchObject({
      effect: 'deny',
      layer: 'context',
      rule: 'gateway-system',
    });
    expect(tool('clipboard', 'system', 'src/a.ts', 'read', 'agent').effect).toBe('ask');
  });
});

describe('protected paths, case folding, hard links', () => {
  const contexts = ['agent', 'gateway', 'local'] as const;
  const evaluate = (
    engine: ReturnType<typeof createPolicyEngine>,
    path: string,
    access: 'read' | 'write' | 'edit',
    context: (typeof contexts)[number] = 'agent',
  ) =>
    engine.evaluate(
      {
        kind: 'tool',
        tool: access === 'read' ? 'read_file' : 'write_file',
        risk: access === 'read' ? 'read' : 'write',
        input: { path },
        paths: [{ path, access }],
      },
      { context, workspace: ws },
    );

  it.each([
    '.git/hooks/post-commit',
    '.git/config',
    'sub/.git/config',
    'sub/.git/hooks/pre-commit',
    '.envrc',
    '.vscode/tasks.json',
    '/workspace/.git/info/attributes',
  ])('a write or edit of %j is denied in every context, saying only config can change it', (p) => {
    const engine = createPolicyEngine({ policy: { allow: ['write_file', 'Write(**)'] } });
    for (const context of contexts)
      for (const access of ['write', 'edit'] as const) {
        const d = evaluate(engine, p, access, context);
        expect(d).toMatchObject({ effect: 'deny', layer: 'guardrails', rule: 'protected-path' });
        expect(d.reasons.join(' ')).toMatch(/no approval can lift this.*\[workspace\] protect/);
      }
    // reading stays allowed
    expect(evaluate(engine, p, 'read').effect).toBe('allow');
  });

  it('a dot-folder rule matches at any depth unless anchored with /', () => {
    const nested = createPolicyEngine({ policy: { deny: ['Write(.github/**)', 'Read(.aws/*)'] } });
    expect(evaluate(nested, 'sub/.github/workflows/ci.yml', 'write')).toMatchObject({
      rule: 'Write(.github/**)',
    });
    expect(evaluate(nested, 'a/b/.aws/credentials', 'read')).toMatchObject({ rule: 'Read(.aws/*)' });
    const anchored = createPolicyEngine({ policy: { deny: ['Write(/.github/**)'] } });
    expect(evaluate(anchored, '.github/x', 'write')).toMatchObject({ effect: 'deny' });
    expect(evaluate(anchored, 'sub/.github/x', 'write').effect).toBe('allow');
  });

  it('a symlink spelling of a protected path is denied too', () => {
    mkdirSync(join(ws, '.git', 'hooks'), { recursive: true });
    symlinkSync('.git/hooks', join(ws, 'hooks-alias'));
    const engine = createPolicyEngine({});
    expect(evaluate(engine, 'hooks-alias/post-checkout', 'write')).toMatchObject({ rule: 'protected-path' });
  });

  it('the protect list comes from config (ProtectedPaths), git metadata always stays', () => {
    const engine = createPolicyEngine({ protect: new ProtectedPaths({ patterns: ['ci/'] }) });
    expect(evaluate(engine, 'ci/run.sh', 'write')).toMatchObject({ rule: 'protected-path' });
    expect(evaluate(engine, '.vscode/tasks.json', 'write').effect).toBe('allow');
    expect(evaluate(engine, '.git/hooks/x', 'write')).toMatchObject({ rule: 'protected-path' });
  });

  it('with caseInsensitive, .Git/CONFIG is protected and Read(.env) covers .ENV', () => {
    const folded = createPolicyEngine({ policy: { deny: ['Read(.env)'] }, caseInsensitive: true });
    expect(evaluate(folded, '.Git/CONFIG', 'write')).toMatchObject({ rule: 'protected-path' });
    expect(evaluate(folded, 'SUB/.GIT/Hooks/x', 'write')).toMatchObject({ rule: 'protected-path' });
    expect(evaluate(folded, '.ENV', 'read')).toMatchObject({ effect: 'deny', rule: 'Read(.env)' });
    const exact = createPolicyEngine({ policy: { deny: ['Read(.env)'] }, caseInsensitive: false });
    expect(evaluate(exact, '.ENV', 'read').effect).toBe('allow');
    expect(evaluate(exact, '.Git/CONFIG', 'write').effect).toBe('allow');
  });

  it('a Read rule catches a symlink whose own name is denied and one that leads to a denied name', () => {
    writeFileSync(join(ws, 'prod.env'), 'K=1');
    symlinkSync('prod.env', join(ws, '.env'));
    symlinkSync('.env', join(ws, 'innocent'));
    const engine = createPolicyEngine({ policy: { deny: ['Read(.env)'] } });
    expect(evaluate(engine, '.env', 'read')).toMatchObject({ effect: 'deny', rule: 'Read(.env)' });
    expect(evaluate(engine, 'innocent', 'read')).toMatchObject({ effect: 'deny', rule: 'Read(.env)' });
    expect(evaluate(engine, 'prod.env', 'read').effect).toBe('allow');
  });

  it('a hard link to a denied or protected file is denied', () => {
    mkdirSync(join(ws, 'hl'));
    writeFileSync(join(ws, 'hl', 'secret.key'), 'k');
    linkSync(join(ws, 'hl', 'secret.key'), join(ws, 'hl', 'notes.txt'));
    writeFileSync(join(ws, '.git', 'hooks', 'pre-push'), '#!/bin/sh');
    linkSync(join(ws, '.git', 'hooks', 'pre-push'), join(ws, 'hl', 'script.sh'));
    const engine = createPolicyEngine({ policy: { deny: ['Read(*.key)'] } });
    const d = evaluate(engine, 'hl/notes.txt', 'read');
    expect(d).toMatchObject({ effect: 'deny', rule: 'Read(*.key)' });
    expect(d.reasons.join(' ')).toMatch(/hard link to hl\/secret\.key/);
    expect(evaluate(engine, 'hl/script.sh', 'write')).toMatchObject({
      effect: 'deny',
      rule: 'protected-path',
    });
    expect(evaluate(engine, 'hl/script.sh', 'read').effect).toBe('allow');
  });
});
