import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CheckpointStore, TaskCheckpoints } from '../../src/host/checkpoints/index.js';

/**
 * The checkpoint store on the host: real git, real files. What a task does by shell is done
 * here with the same system calls (the guest's share writes the same host files); the real-guest
 * test (tests/integration/checkpoints.test.ts) repeats the essentials through a VM.
 */
let root: string;
let ws: string;
let state: string;
let outside: string;
const OPTS = { exclude: ['*.log', 'build/'], maxFileBytes: 1024 * 1024 };

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'cvm-ckpt-'));
  ws = join(root, 'ws');
  state = join(root, 'state');
  outside = join(root, 'outside');
  mkdirSync(ws);
  mkdirSync(outside);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, prefix: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const rel = prefix + name;
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out[rel] = `link:${readlinkSync(p)}`;
      else if (st.isDirectory()) {
        out[`${rel}/`] = `dir:${(st.mode & 0o7777).toString(8)}`;
        walk(p, `${rel}/`);
      } else out[rel] = `file:${(st.mode & 0o7777).toString(8)}:${readFileSync(p).toString('base64')}`;
    }
  };
  walk(dir, '');
  return out;
}

describe('checkpoints: diff and undo of shell-style changes', () => {
  it('sees edits, deletes, renames, mode changes, new links and binary files, and undo restores them exactly', async () => {
    writeFileSync(join(ws, 'a.txt'), 'one\ntwo\n');
    writeFileSync(join(ws, 'gone.txt'), 'bye\n');
    mkdirSync(join(ws, 'src'));
    writeFileSync(join(ws, 'src', 'old.ts'), 'export {}\n');
    writeFileSync(join(ws, 'run.sh'), '#!/bin/sh\n', { mode: 0o644 });
    writeFileSync(join(ws, 'secret.key'), 'k', { mode: 0o600 });
    writeFileSync(join(ws, 'img.bin'), Buffer.from([0, 1, 2, 3]));
    symlinkSync('a.txt', join(ws, 'alias'));
    const before = tree(ws);
    const store = await CheckpointStore.open(state, ws, OPTS);
    await store.begin({ id: 't1', kind: 'task', label: 'edit by shell' });

    writeFileSync(join(ws, 'a.txt'), 'one\nTWO\n'); // sed -i
    unlinkSync(join(ws, 'gone.txt')); // rm
    renameSync(join(ws, 'src', 'old.ts'), join(ws, 'src', 'new.ts')); // mv
    chmodSync(join(ws, 'run.sh'), 0o755); // chmod +x
    chmodSync(join(ws, 'secret.key'), 0o640); // a mode git does not keep
    symlinkSync('../outside', join(ws, 'out')); // a new link, pointing out
    unlinkSync(join(ws, 'alias'));
    symlinkSync('run.sh', join(ws, 'alias')); // retargeted link
    writeFileSync(join(ws, 'img.bin'), Buffer.from([0, 9, 9]));
    mkdirSync(join(ws, 'newdir', 'deep'), { recursive: true });
    writeFileSync(join(ws, 'newdir', 'deep', 'f'), 'x');

    const d = await store.finish('t1');
    const byPath = Object.fromEntries(d.changes.map((c) => [c.path, c.change]));
    expect(byPath).toEqual({
      'a.txt': 'modified',
      alias: 'modified',
      'gone.txt': 'deleted',
      'img.bin': 'modified',
      'newdir/deep/f': 'created',
      out: 'created',
      'run.sh': 'mode',
      'secret.key': 'mode',
      'src/new.ts': 'created',
      'src/old.ts': 'deleted',
    });
    expect(d.changes.find((c) => c.path === 'img.bin')?.binary).toBe(true);
    const patch = await store.patch(await store.diff('t1'));
    expect(patch).toContain('-two');
    expect(patch).toContain('+TWO');
    expect(patch).toContain('old mode 100644');
    expect(patch).toMatch(/Binary files .*img\.bin.* differ/);

    const u = await store.undo('t1');
    expect(u.conflicts).toEqual([]);
    expect(tree(ws)).toEqual(before);
    // The undo is a checkpoint of its own: undoing it brings the task's result back.
    await store.undo(u.undo);
    expect(readFileSync(join(ws, 'a.txt'), 'utf8')).toBe('one\nTWO\n');
    expect(readlinkSync(join(ws, 'out'))).toBe('../outside');
    expect(statSync(join(ws, 'run.sh')).mode & 0o777).toBe(0o755);
  });

  it('refuses an undo over a file changed since the task, touching nothing; --force overwrites', async () => {
    writeFileSync(join(ws, 'a.txt'), 'v1\n');
    writeFileSync(join(ws, 'b.txt'), 'b1\n');
    const store = await CheckpointStore.open(state, ws, OPTS);
    await store.begin({ id: 't2', kind: 'task', label: 't' });
    writeFileSync(join(ws, 'a.txt'), 'v2 by task\n');
    writeFileSync(join(ws, 'b.txt'), 'b2 by task\n');
    await store.finish('t2');
    writeFileSync(join(ws, 'a.txt'), 'v3 by the user\n');
    await expect(store.undo('t2')).rejects.toThrow(/refused.*a\.txt.*nothing was touched/s);
    expect(readFileSync(join(ws, 'a.txt'), 'utf8')).toBe('v3 by the user\n');
    expect(readFileSync(join(ws, 'b.txt'), 'utf8')).toBe('b2 by task\n');
    const r = await store.undo('t2', { force: true });
    expect(r.conflicts).toEqual(['a.txt']);
    expect(readFileSync(join(ws, 'a.txt'), 'utf8')).toBe('v1\n');
    expect(readFileSync(join(ws, 'b.txt'), 'utf8')).toBe('b1\n');
  });

  it('honours .gitignore and the exclude list, and reports a file over the size cap instead of losing it', async () => {
    writeFileSync(join(ws, '.gitignore'), 'node_modules/\n');
    mkdirSync(join(ws, 'node_modules'));
    writeFileSync(join(ws, 'node_modules', 'x.js'), 'x');
    writeFileSync(join(ws, 'debug.log'), 'log');
    writeFileSync(join(ws, 'big.dat'), Buffer.alloc(2 * 1024 * 1024, 1));
    const store = await CheckpointStore.open(state, ws, OPTS);
    const rec = await store.begin({ id: 't3', kind: 'task', label: 't' });
    expect(rec.before.files).toBe(1); // .gitignore
    expect(rec.before.skippedFiles).toEqual([
      { path: 'big.dat', size: 2 * 1024 * 1024, reason: expect.stringMatching(/larger than/) },
    ]);
    writeFileSync(join(ws, 'node_modules', 'x.js'), 'y');
    const d = await store.finish('t3');
    expect(d.changes).toEqual([]);
    expect(d.skipped.map((s) => s.path)).toEqual(['big.dat']);
  });

  it('a task killed before it ended: its checkpoint is still there and diff compares with now', async () => {
    writeFileSync(join(ws, 'a'), '1');
    const s1 = await CheckpointStore.open(state, ws, OPTS);
    await s1.begin({ id: 't4', kind: 'task', label: 't' });
    writeFileSync(join(ws, 'a'), '2');
    // A new process opening the store (the controller is gone):
    const s2 = await CheckpointStore.open(state, ws, OPTS);
    expect(s2.list().map((r) => [r.id, r.after])).toEqual([['t4', undefined]]);
    const d = await s2.diff('t4');
    expect(d.live).toBe(true);
    expect(d.changes.map((c) => c.path)).toEqual(['a']);
  });
});

describe('checkpoints: a write racing the index update', () => {
  it("a file rewritten between our read and git's update-index is still seen changing", async () => {
    // Stands in for the guest writing while the host checkpoints: a `git` first on PATH that,
    // on its first update-index, rewrites a.txt (same size) before git stats and hashes it.
    const bin = join(root, 'bin');
    mkdirSync(bin);
    const once = join(root, 'raced');
    const realGit = execFileSync('sh', ['-c', 'command -v git']).toString().trim();
    writeFileSync(
      join(bin, 'git'),
      `#!/bin/sh\nfor a in "$@"; do if [ "$a" = update-index ] && [ ! -e '${once}' ]; then : > '${once}'; printf EVIL > '${join(ws, 'a.txt')}'; fi; done\nexec '${realGit}' "$@"\n`,
      { mode: 0o755 },
    );
    writeFileSync(join(ws, 'a.txt'), 'good');
    // Settled: older than the "racy" window (mtime and ctime), so only the race could flag it.
    await new Promise((r) => setTimeout(r, 2200));
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path}`;
    try {
      const store = await CheckpointStore.open(state, ws, OPTS);
      await store.begin({ id: 'r1', kind: 'task', label: 't' });
      expect(existsSync(once)).toBe(true);
      expect(readFileSync(join(ws, 'a.txt'), 'utf8')).toBe('EVIL');
      await store.finish('r1');
      const d = await store.diff('r1');
      expect(d.changes.map((c) => [c.path, c.change])).toEqual([['a.txt', 'modified']]);
    } finally {
      process.env.PATH = path;
    }
  });
});

describe('checkpoints: the patch the dashboard shows (tasks.diff)', () => {
  it("is the task's patch, cut at a line end under the cap and flagged; an unknown id is notFound", async () => {
    writeFileSync(join(ws, 'notes.txt'), 'one\n');
    const hooks = new TaskCheckpoints(await CheckpointStore.open(state, ws, OPTS));
    await hooks.before({ id: 't9', kind: 'task', label: 'edit' });
    writeFileSync(join(ws, 'notes.txt'), `${'line of the task\n'.repeat(200)}`);
    writeFileSync(join(ws, 'new.txt'), 'fresh\n');
    await hooks.after('t9');
    const whole = await hooks.patch('t9', 1 << 20);
    expect(whole).toMatchObject({ checkpoint: 't9', truncated: false, live: false });
    expect(whole.patch).toContain('+line of the task');
    expect(whole.patch).toContain('-one');
    expect(whole.patch).toContain('+fresh');
    const cut = await hooks.patch('t9', 500);
    expect(cut.truncated).toBe(true);
    expect(Buffer.byteLength(cut.patch)).toBeLessThanOrEqual(500);
    expect(cut.patch.endsWith('\n')).toBe(true);
    expect(whole.patch.startsWith(cut.patch)).toBe(true);
    await expect(hooks.patch('nope', 100)).rejects.toMatchObject({ code: 'notFound' });
    await expect(hooks.patch('../../etc', 100)).rejects.toMatchObject({ code: 'notFound' });
  });
});

describe('checkpoints: the stat cache (git index) never hides a change', () => {
  it('sees chmod and same-size rewrites of settled files and of files changed within the same second, across processes', async () => {
    writeFileSync(join(ws, 'k'), 'aaaa');
    chmodSync(join(ws, 'k'), 0o600);
    writeFileSync(join(ws, 'same'), 'xxxx');
    writeFileSync(join(ws, 'keep'), 'keep');
    await new Promise((r) => setTimeout(r, 2100)); // settled: git's index trusts their stat
    const store = await CheckpointStore.open(state, ws, OPTS);
    await store.begin({ id: 's1', kind: 'task', label: 's1' });
    chmodSync(join(ws, 'k'), 0o640);
    writeFileSync(join(ws, 'same'), 'yyyy');
    let d = await store.finish('s1');
    expect(d.changes.map((c) => [c.path, c.change])).toEqual([
      ['k', 'mode'],
      ['same', 'modified'],
    ]);
    // Again at once, within the second the last snapshot recorded them in:
    await store.begin({ id: 's2', kind: 'task', label: 's2' });
    chmodSync(join(ws, 'k'), 0o644);
    writeFileSync(join(ws, 'same'), 'zzzz');
    d = await store.finish('s2');
    expect(d.changes.map((c) => [c.path, c.change])).toEqual([
      ['k', 'mode'],
      ['same', 'modified'],
    ]);
    // Another process (a CLI undo) changes the workspace and the store; this one notices.
    const other = await CheckpointStore.open(state, ws, OPTS);
    await other.undo('s2');
    await store.begin({ id: 's3', kind: 'task', label: 's3' });
    writeFileSync(join(ws, 'new'), 'n');
    d = await store.finish('s3');
    expect(d.changes.map((c) => c.path)).toEqual(['new']);
    expect(readFileSync(join(ws, 'same'), 'utf8')).toBe('yyyy');
    expect(statSync(join(ws, 'k')).mode & 0o777).toBe(0o640);
  });
});

describe('checkpoints: attacks from inside the workspace', () => {
  it('a malicious .git, .gitattributes filter and hooks run nothing, and bytes stay exact', async () => {
    const marker = join(outside, 'pwned');
    const evil = `touch ${marker}`;
    mkdirSync(join(ws, '.git', 'hooks'), { recursive: true });
    writeFileSync(
      join(ws, '.git', 'config'),
      `[core]\n\tfsmonitor = "${evil}"\n\thooksPath = .git/hooks\n[filter "evil"]\n\tclean = ${evil}\n\tsmudge = ${evil}\n\trequired = true\n[diff "evil"]\n\ttextconv = ${evil}\n\tcommand = ${evil}\n`,
    );
    writeFileSync(join(ws, '.git', 'HEAD'), 'ref: refs/heads/main\n');
    for (const h of ['pre-commit', 'post-checkout', 'post-index-change', 'reference-transaction'])
      writeFileSync(join(ws, '.git', 'hooks', h), `#!/bin/sh\n${evil}\n`, { mode: 0o755 });
    writeFileSync(
      join(ws, '.gitattributes'),
      '* filter=evil diff=evil text eol=crlf ident working-tree-encoding=UTF-16\n',
    );
    writeFileSync(join(ws, 'crlf.txt'), 'a\r\nb\n$Id$\n');
    // A nested repository with the same traps.
    mkdirSync(join(ws, 'sub', '.git'), { recursive: true });
    writeFileSync(join(ws, 'sub', '.git', 'config'), `[core]\n\tfsmonitor = "${evil}"\n`);
    writeFileSync(join(ws, 'sub', 'f.txt'), 'sub\n');

    const store = await CheckpointStore.open(state, ws, OPTS);
    await store.begin({ id: 'a1', kind: 'task', label: 'attack' });
    writeFileSync(join(ws, 'crlf.txt'), 'changed\r\n');
    writeFileSync(join(ws, 'sub', 'f.txt'), 'sub2\n');
    const d = await store.finish('a1');
    expect(d.changes.map((c) => c.path)).toEqual(['crlf.txt', 'sub/f.txt']);
    await store.patch(await store.diff('a1'));
    await store.undo('a1');
    expect(readFileSync(join(ws, 'crlf.txt'), 'utf8')).toBe('a\r\nb\n$Id$\n');
    expect(readFileSync(join(ws, 'sub', 'f.txt'), 'utf8')).toBe('sub\n');
    expect(existsSync(marker)).toBe(false);
    // The user's .git is data to us: never part of a checkpoint, never written.
    expect(d.changes.some((c) => c.path.startsWith('.git/'))).toBe(false);
  });

  it('undo never writes through a link out of the workspace', async () => {
    mkdirSync(join(ws, 'docs'));
    writeFileSync(join(ws, 'docs', 'readme.md'), 'inside\n');
    writeFileSync(join(ws, 'notes'), 'n1\n');
    const store = await CheckpointStore.open(state, ws, OPTS);
    await store.begin({ id: 'a2', kind: 'task', label: 'links' });
    // The task swaps a folder and a file for links to a folder outside.
    rmSync(join(ws, 'docs'), { recursive: true });
    symlinkSync(outside, join(ws, 'docs'));
    unlinkSync(join(ws, 'notes'));
    symlinkSync(join(outside, 'notes'), join(ws, 'notes'));
    writeFileSync(join(outside, 'notes'), 'host file\n');
    await store.finish('a2');
    await store.undo('a2');
    expect(readFileSync(join(ws, 'docs', 'readme.md'), 'utf8')).toBe('inside\n');
    expect(lstatSync(join(ws, 'docs')).isDirectory()).toBe(true);
    expect(lstatSync(join(ws, 'notes')).isFile()).toBe(true);
    expect(readFileSync(join(ws, 'notes'), 'utf8')).toBe('n1\n');
    expect(readdirSync(outside)).toEqual(['notes']);
    expect(readFileSync(join(outside, 'notes'), 'utf8')).toBe('host file\n');
  });

  it('a folder swapped for a link to a host folder with the same names: nothing is read through it', async () => {
    mkdirSync(join(ws, 'conf'));
    writeFileSync(join(ws, 'conf', 'app.ini'), 'mine\n');
    mkdirSync(join(outside, 'conf'));
    writeFileSync(join(outside, 'conf', 'app.ini'), 'HOST SECRET\n');
    symlinkSync('/etc/hostname', join(outside, 'conf', 'ln'));
    await new Promise((r) => setTimeout(r, 2100)); // settled, so the stat cache is what decides
    const store = await CheckpointStore.open(state, ws, OPTS);
    await store.begin({ id: 'a4', kind: 'task', label: 'swap' });
    writeFileSync(join(ws, 'conf', 'ln'), 'x');
    await store.finish('a4');
    await store.begin({ id: 'a5', kind: 'task', label: 'swap' });
    rmSync(join(ws, 'conf'), { recursive: true });
    symlinkSync(join(outside, 'conf'), join(ws, 'conf'));
    const d = await store.finish('a5');
    expect(d.changes.map((c) => [c.path, c.change])).toEqual([
      ['conf', 'created'],
      ['conf/app.ini', 'deleted'],
      ['conf/ln', 'deleted'],
    ]);
    const oid = createHash('sha1').update('blob 12\0HOST SECRET\n').digest('hex');
    expect(
      existsSync(join(state, 'checkpoints', 'store.git', 'objects', oid.slice(0, 2), oid.slice(2))),
    ).toBe(false);
    await store.patch(d);
    await store.undo('a5');
    expect(readFileSync(join(ws, 'conf', 'app.ini'), 'utf8')).toBe('mine\n');
    expect(readFileSync(join(outside, 'conf', 'app.ini'), 'utf8')).toBe('HOST SECRET\n');
  });

  it('a link to a host file is stored as a link: the host file never enters the store', async () => {
    writeFileSync(join(outside, 'id_rsa'), 'PRIVATE KEY');
    const store = await CheckpointStore.open(state, ws, OPTS);
    await store.begin({ id: 'a3', kind: 'task', label: 'leak' });
    symlinkSync(join(outside, 'id_rsa'), join(ws, 'key'));
    const d = await store.finish('a3');
    expect(d.changes[0]).toMatchObject({ path: 'key', change: 'created', after: { kind: 'link' } });
    const c = d.changes[0];
    expect(store.blob(c?.after?.oid ?? '').toString()).toBe(join(outside, 'id_rsa'));
    const oid = createHash('sha1').update('blob 11\0PRIVATE KEY').digest('hex');
    expect(
      existsSync(join(state, 'checkpoints', 'store.git', 'objects', oid.slice(0, 2), oid.slice(2))),
    ).toBe(false);
  });
});

describe('checkpoints: a warm snapshot is the snapshot a fresh store would take', () => {
  it('after a folder becomes a link, a file becomes a folder, a mode-only change, deletions and same-second rewrites', async () => {
    mkdirSync(join(ws, 'a', 'b'), { recursive: true });
    writeFileSync(join(ws, 'a', 'b', 'f'), '1');
    writeFileSync(join(ws, 'a', 'g'), '2');
    writeFileSync(join(ws, 'x'), 'file, later a folder');
    writeFileSync(join(ws, 'm'), 'mode', { mode: 0o644 });
    mkdirSync(join(ws, 'gone', 'deep'), { recursive: true });
    writeFileSync(join(ws, 'gone', 'deep', 'h'), '3');
    const store = await CheckpointStore.open(state, ws, OPTS);
    const steps: (() => void)[] = [
      () => {
        rmSync(join(ws, 'a', 'b'), { recursive: true });
        symlinkSync(outside, join(ws, 'a', 'b'));
      },
      () => {
        unlinkSync(join(ws, 'x'));
        mkdirSync(join(ws, 'x'));
        writeFileSync(join(ws, 'x', 'inner'), 'now a folder');
      },
      () => chmodSync(join(ws, 'm'), 0o755),
      () => rmSync(join(ws, 'gone'), { recursive: true }),
      () => writeFileSync(join(ws, 'a', 'g'), '9'), // same size, same second as the last snapshot
      () => {
        unlinkSync(join(ws, 'a', 'b'));
        mkdirSync(join(ws, 'a', 'b'));
        writeFileSync(join(ws, 'a', 'b', 'f'), 'back');
      },
    ];
    for (const [i, step] of steps.entries()) {
      await store.begin({ id: `w${i}`, kind: 'task', label: 'step' });
      step();
      const d = await store.finish(`w${i}`);
      const fresh = await CheckpointStore.open(join(root, `fresh${i}`), ws, OPTS);
      const cold = await fresh.begin({ id: 'c', kind: 'task', label: 'cold' });
      expect(d.afterTree).toBe(cold.before.tree);
      expect(d.record.after?.files).toBe(cold.before.files);
      // The change set compared only re-read paths; a full comparison finds the same.
      const full = await (await CheckpointStore.open(state, ws, OPTS)).diff(`w${i}`);
      expect(d.changes.map((c) => [c.path, c.change])).toEqual(full.changes.map((c) => [c.path, c.change]));
      expect(d.changes.length).toBeGreaterThan(0);
    }
  });
});

describe('checkpoints: the deferred stat-cache update', () => {
  it('a path read again but not yet put in the index is still seen changing, deleted or re-created, across processes; odd names are plain paths', async () => {
    writeFileSync(join(ws, 'f'), 'aaaa');
    writeFileSync(join(ws, '__proto__'), 'p');
    writeFileSync(join(ws, 'constructor'), 'c');
    await new Promise((r) => setTimeout(r, 2100)); // settled, so only the index decides
    const store = await CheckpointStore.open(state, ws, OPTS);
    await store.begin({ id: 'd0', kind: 'task', label: 'd' });
    const seen: string[][] = [];
    const edits = [
      () => writeFileSync(join(ws, 'f'), 'bbbb'), // same size
      () => chmodSync(join(ws, 'f'), 0o600),
      () => unlinkSync(join(ws, 'f')),
      () => writeFileSync(join(ws, 'f'), 'cccc'),
      () => unlinkSync(join(ws, 'constructor')),
      async () => {
        writeFileSync(join(ws, 'new'), 'n'); // never in the index yet, settled when read...
        await new Promise((r) => setTimeout(r, 2100));
      },
      () => unlinkSync(join(ws, 'new')), // ...and gone again: git names neither
      () => symlinkSync('f', join(ws, 'ln')),
      () => unlinkSync(join(ws, 'ln')),
    ];
    for (const [i, edit] of edits.entries()) {
      // Half the steps in a new process (the CLI), which reads the store as the last one left it.
      const s = i % 2 ? await CheckpointStore.open(state, ws, OPTS) : store;
      await s.begin({ id: `d${i + 1}`, kind: 'task', label: 'd' });
      await edit();
      const d = await s.finish(`d${i + 1}`);
      seen.push(d.changes.map((c) => `${c.change} ${c.path}`));
    }
    expect(seen).toEqual([
      ['modified f'],
      ['mode f'],
      ['deleted f'],
      ['created f'],
      ['deleted constructor'],
      ['created new'],
      ['deleted new'],
      ['created ln'],
      ['deleted ln'],
    ]);
    const rec = store.get('d0');
    expect(rec.before.files).toBe(3);
  });
});
