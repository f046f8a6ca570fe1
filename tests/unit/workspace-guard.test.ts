import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProtectedPaths, WorkspaceGuard } from '../../src/host/workspace/index.js';
import { waitFor } from '../helpers/wait.js';

/** The protected-path matcher: pure, many cases. */
describe('ProtectedPaths', () => {
  const p = new ProtectedPaths();
  const ci = new ProtectedPaths({ caseInsensitive: true });
  it.each([
    '.git',
    '.git/config',
    '.git/config.worktree',
    '.git/hooks',
    '.git/hooks/post-commit',
    '.git/info/attributes',
    '.git/commondir',
    '.git/modules/lib/config',
    '.git/modules/lib/hooks/pre-commit',
    '.git/worktrees/w/commondir',
    'sub/.git',
    'sub/.git/config',
    'a/b/c/.git/hooks/x',
    '.envrc',
    'sub/.envrc',
    '.vscode/tasks.json',
    'pkg/.vscode/settings.json',
    '.idea/workspace.xml',
    '.devcontainer/devcontainer.json',
    '.pre-commit-config.yaml',
    '.husky/pre-commit',
    './.git/config',
    'x/../.git/config'.replace('x/../', ''),
  ])('protects %s', (rel) => {
    expect(p.reason(rel)).toBeTruthy();
  });

  it.each([
    '',
    '.',
    'src/index.ts',
    '.gitignore',
    '.github/workflows/ci.yml',
    '.git/objects/info/packs',
    '.git/objects/ab/cdef',
    'git/config',
    'config',
    'hooks/x',
    'envrc',
    '.envrc.example',
    '.vscode-test/x',
  ])('leaves %s alone', (rel) => {
    expect(p.reason(rel)).toBeNull();
  });

  it('folds case only when the filesystem does', () => {
    expect(p.reason('.Git/CONFIG')).toBeNull();
    expect(ci.reason('.Git/CONFIG')).toBeTruthy();
    expect(ci.reason('.ENVRC')).toBeTruthy();
    expect(ci.reason('Sub/.GIT/Hooks/post-commit')).toBeTruthy();
  });

  it('takes configured patterns: names at any depth, anchored paths at the root', () => {
    const c = new ProtectedPaths({ patterns: ['Makefile', '/tools/run.sh', 'ci/'] });
    expect(c.reason('Makefile')).toBeTruthy();
    expect(c.reason('sub/Makefile')).toBeTruthy();
    expect(c.reason('tools/run.sh')).toBeTruthy();
    expect(c.reason('x/tools/run.sh')).toBeNull();
    expect(c.reason('ci/deploy.yml')).toBeTruthy();
    // The default list is replaced, git metadata is not.
    expect(c.reason('.envrc')).toBeNull();
    expect(c.reason('.git/hooks/pre-push')).toBeTruthy();
  });
});

/** The guard against a real directory tree (the host side; the guest side is tested in a VM). */
describe('WorkspaceGuard', () => {
  let root: string;
  let ws: string;
  let state: string;
  let changes: { path: string }[];
  let guard: WorkspaceGuard;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'cowork-guard-'));
    ws = join(root, 'ws');
    state = join(root, 'state');
    mkdirSync(ws);
    mkdirSync(state);
    execFileSync('git', ['init', '-q', ws]);
    rmSync(join(ws, '.git', 'hooks'), { recursive: true, force: true });
    mkdirSync(join(ws, 'lib'));
    execFileSync('git', ['init', '-q', join(ws, 'lib')]);
    writeFileSync(join(ws, '.envrc'), 'export A=1\n');
    writeFileSync(join(ws, 'README.md'), 'hi\n');
    symlinkSync('README.md', join(ws, 'sub.envrc'));
    changes = [];
    guard = new WorkspaceGuard({
      workspace: ws,
      stateDir: state,
      protect: new ProtectedPaths(),
      onChange: (c) => changes.push(c),
    });
  });
  afterEach(() => {
    guard.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('plans pins for every .git and read-only mounts for what git runs, parents first', async () => {
    const plan = await guard.planMounts();
    const lines = plan.map((l) => `${l.op} ${l.rel}`);
    expect(lines).toContain('pin .git');
    expect(lines).toContain('pin lib/.git');
    expect(lines).toContain('ro .git/config');
    expect(lines).toContain('ro .git/hooks');
    expect(lines).toContain('ro .git/info');
    expect(lines).toContain('ro lib/.git/hooks');
    expect(lines).toContain('ro .envrc');
    expect(lines.some((l) => l.includes('README') || l.includes('objects'))).toBe(false);
    // The missing hooks/ of the workspace's repository was created so it can be mounted.
    expect(existsSync(join(ws, '.git', 'hooks'))).toBe(true);
    expect(lines.indexOf('pin .git')).toBeLessThan(lines.indexOf('ro .git/config'));
    expect(lines.indexOf('pin lib/.git')).toBeLessThan(lines.indexOf('ro lib/.git/config'));
  });

  it('quarantines protected paths created after boot, and nothing else', async () => {
    await guard.planMounts();
    expect(await guard.check()).toEqual([]);
    // The attacks: a nested repository, an .envrc below, a commondir, a new module's config.
    execFileSync('git', ['init', '-q', join(ws, 'evil')]);
    writeFileSync(join(ws, 'evil', '.git', 'hooks', 'post-checkout'), '#!/bin/sh\ntouch /tmp/pwned\n', {
      mode: 0o755,
    });
    mkdirSync(join(ws, 'deep', 'er'), { recursive: true });
    writeFileSync(join(ws, 'deep', 'er', '.envrc'), 'touch /tmp/pwned\n');
    writeFileSync(join(ws, '.git', 'commondir'), '../evil/.git\n');
    mkdirSync(join(ws, '.git', 'modules', 'm'), { recursive: true });
    writeFileSync(join(ws, '.git', 'modules', 'm', 'config'), '[core]\n\tfsmonitor = touch /tmp/pwned\n');
    writeFileSync(join(ws, 'src.txt'), 'ordinary\n');
    const found = await guard.check();
    expect(found.map((c) => c.path).sort()).toEqual(
      ['.git/commondir', '.git/modules/m/config', 'deep/er/.envrc', 'evil/.git'].sort(),
    );
    for (const c of found) {
      expect(c.action).toBe('quarantined');
      expect(existsSync(join(ws, c.path))).toBe(false);
      expect(c.quarantinedTo?.startsWith(join(state, 'quarantine'))).toBe(true);
      expect(existsSync(c.quarantinedTo as string)).toBe(true);
    }
    expect(readFileSync(join(ws, 'src.txt'), 'utf8')).toBe('ordinary\n');
    expect(changes.length).toBe(4);
    // Nothing new: nothing reported twice.
    expect(await guard.check()).toEqual([]);
  });

  it('accepts the host user changing what was protected at boot, and a repository moved with its folder', async () => {
    await guard.planMounts();
    // git on the host rewrites .git/config by rename (a new inode): that is the user.
    execFileSync('git', ['-C', ws, 'config', 'user.name', 'me']);
    renameSync(join(ws, 'lib'), join(ws, 'lib2'));
    expect(await guard.check()).toEqual([]);
    // The old place is free again: a repository made there is new.
    execFileSync('git', ['init', '-q', join(ws, 'lib')]);
    expect((await guard.check()).map((c) => c.path)).toEqual(['lib/.git']);
  });

  it("protects what the repository's own config points at: core.hooksPath and include.path", async () => {
    mkdirSync(join(ws, '.githooks'));
    writeFileSync(join(ws, '.githooks', 'pre-commit'), '#!/bin/sh\n', { mode: 0o755 });
    writeFileSync(join(ws, 'team.gitconfig'), '[alias]\n\tst = status\n');
    execFileSync('git', ['-C', ws, 'config', 'core.hooksPath', '.githooks']);
    execFileSync('git', ['-C', ws, 'config', 'include.path', '../team.gitconfig']);
    execFileSync('git', ['-C', ws, 'config', 'includeIf.onbranch:main.path', '~/elsewhere']);
    const plan = (await guard.planMounts()).map((l) => `${l.op} ${l.rel}`);
    expect(plan).toContain('ro .githooks');
    expect(plan).toContain('ro team.gitconfig');
    expect(plan.some((l) => l.includes('elsewhere'))).toBe(false);
    expect(guard.protectedPaths.reason('.githooks/post-merge')).toBeTruthy();
    expect(guard.protectedPaths.reason('team.gitconfig')).toBeTruthy();
    expect(guard.protectedPaths.reason('sub/.githooks/x')).toBeNull();
  });

  it('treats a protected symlink that is replaced as new', async () => {
    const g = new WorkspaceGuard({
      workspace: ws,
      stateDir: state,
      protect: new ProtectedPaths({ patterns: ['sub.envrc'] }),
    });
    const plan = await g.planMounts();
    expect(plan.map((l) => `${l.op} ${l.rel}`)).toContain('ro sub.envrc');
    rmSync(join(ws, 'sub.envrc'));
    writeFileSync(join(ws, 'sub.envrc'), 'touch /tmp/pwned\n');
    const found = await g.check();
    g.close();
    expect(found.map((c) => [c.path, c.change])).toEqual([['sub.envrc', 'replaced']]);
  });

  it('in a tree too large for a scan per command, the watcher still catches a protected path by name', async () => {
    const big = new WorkspaceGuard({
      workspace: ws,
      stateDir: state,
      protect: new ProtectedPaths(),
      fullScanLimit: 0,
      onChange: (c) => changes.push(c),
    });
    await big.planMounts();
    big.watch(60_000);
    const mark = big.mark();
    await new Promise((r) => setTimeout(r, 100));
    writeFileSync(join(ws, 'ordinary.txt'), 'x');
    writeFileSync(join(ws, '.envrc2'), 'x');
    mkdirSync(join(ws, 'tools'));
    await new Promise((r) => setTimeout(r, 100));
    writeFileSync(join(ws, 'tools', '.envrc'), 'touch /tmp/pwned\n');
    await waitFor(() => changes.length > 0, 'the watcher to report a change');
    const seen = await big.afterCommand(mark);
    big.close();
    expect(seen.map((c) => c.path)).toEqual(['tools/.envrc']);
    expect(existsSync(join(ws, 'tools', '.envrc'))).toBe(false);
    expect(existsSync(join(ws, 'ordinary.txt'))).toBe(true);
  });

  it('notices a new protected path by itself (watcher), without a command finishing', async () => {
    await guard.planMounts();
    guard.watch(60_000);
    await new Promise((r) => setTimeout(r, 100));
    writeFileSync(join(ws, '.envrc.tmp'), 'x');
    mkdirSync(join(ws, 'later'));
    writeFileSync(join(ws, 'later', '.envrc'), 'touch /tmp/pwned\n');
    await waitFor(() => changes.length > 0, 'the watcher to report a change');
    expect(changes.map((c) => c.path)).toEqual(['later/.envrc']);
    expect(existsSync(join(ws, 'later', '.envrc'))).toBe(false);
    expect(existsSync(join(ws, '.envrc.tmp'))).toBe(true);
  });
});
