import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostPaths } from '../../src/host/paths.js';
import { ImageStore } from '../../src/host/vm/index.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The built CLI works for an ordinary user. CI runs as root, so this file
 * creates a throwaway user and runs `start --detach` / `exec` / `status --json` / `stop` as that
 * user (uid/gid switched by spawn), against a copy of the installation the user can read (the
 * repository may live under /root, mode 700) and a private image cache holding hard links to
 * the current base image. Nothing here is skipped: without root (to create the user), without
 * a build in dist/, or without the base image, the file fails and says what is missing.
 */

const REPO = fileURLToPath(new URL('../../', import.meta.url));
/** What the installed package needs at run time (package.json "files" + dependencies). */
const INSTALL_ENTRIES = [
  'package.json',
  'bin',
  'dist',
  'node_modules',
  'images',
  'scripts',
  join('src', 'guest'),
];
const IMAGE = 'base';

interface RunAs {
  name: string;
  uid: number;
  gid: number;
  home: string;
  /** True when this file created the user (and so removes it). */
  created: boolean;
}

function sh(cmd: string, args: string[]): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: 'utf8' });
}

function mustRun(cmd: string, args: string[]): void {
  const r = sh(cmd, args);
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr || r.error}`);
}

function lookupUser(name: string): RunAs | undefined {
  const r = sh('getent', ['passwd', name]);
  if (r.status !== 0) return undefined;
  const [, , uid, gid, , home] = r.stdout.trim().split(':');
  return { name, uid: Number(uid), gid: Number(gid), home: home ?? '', created: false };
}

function createUser(): RunAs {
  if (process.getuid?.() !== 0) {
    throw new Error(
      `the non-root test creates a throwaway user and so must run as root (CI does); running as ${userInfo().username}`,
    );
  }
  const name = `cowork-nr-${randomBytes(3).toString('hex')}`;
  const existing = lookupUser(name);
  if (existing) return existing;
  mustRun('useradd', ['-m', '-s', '/bin/sh', '-U', name]);
  const user = lookupUser(name);
  if (!user) throw new Error(`useradd ${name} succeeded but getent cannot find the user`);
  return { ...user, created: true };
}

/** Hard links when src and dest share a filesystem (cheap, files keep root's 0644), else a copy. */
function copyTree(src: string, dest: string): void {
  const linked = sh('cp', ['-al', src, dest]);
  if (linked.status === 0) return;
  rmSync(dest, { recursive: true, force: true });
  mustRun('cp', ['-r', '--preserve=mode', src, dest]);
}

/** Every folder of the copy readable by others. Only folders: a linked file shares its inode with the original. */
function openFolders(dir: string): void {
  mustRun('find', [dir, '-type', 'd', '-exec', 'chmod', 'a+rx', '{}', '+']);
}

/** Gone or a zombie (a detached controller's parent may not reap it at once). Waits up to 20 s. */
function exited(pid: number): Promise<boolean> {
  const gone = () => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
    } catch {
      return true;
    }
  };
  return waitFor(gone, `process ${pid} to exit`, { timeoutMs: 20_000, intervalMs: 200 }).catch(() => false);
}

describe('an ordinary user runs the built CLI', () => {
  let user: RunAs;
  let root: string;
  let ws: string;
  let bin: string;
  let env: NodeJS.ProcessEnv;

  function asUser(args: string[]): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [bin, ...args], {
      uid: user.uid,
      gid: user.gid,
      cwd: ws,
      env,
      encoding: 'utf8',
      timeout: 300_000,
    });
    if (r.error) throw new Error(`cannot run ${bin} as ${user.name}: ${r.error.message}`);
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  beforeAll(() => {
    if (!existsSync(join(REPO, 'dist', 'cli', 'main.js')))
      throw new Error('dist/ is missing — run `npm run build` before the non-root CLI test');
    const sourceImage = new ImageStore(hostPaths(process.env)).imageDir(IMAGE);
    if (!existsSync(join(sourceImage, 'manifest.json')))
      throw new Error(
        `the ${IMAGE} image is not built (${sourceImage}) — run: cowork-vm image build ${IMAGE}`,
      );

    user = createUser();
    root = mkdtempSync(join(tmpdir(), 'cowork-nr-'));
    chmodSync(root, 0o755);
    for (let d = dirname(root); d !== dirname(d); d = dirname(d)) {
      if ((statSync(d).mode & 0o001) === 0)
        throw new Error(
          `${d} is not searchable by other users: point TMPDIR at a folder that is (e.g. /tmp)`,
        );
    }

    // The installation, readable by the user wherever the repository lives.
    const app = join(root, 'app');
    mkdirSync(join(app, 'src'), { recursive: true });
    for (const entry of INSTALL_ENTRIES) {
      if (existsSync(join(REPO, entry))) copyTree(join(REPO, entry), join(app, entry));
    }
    openFolders(app);
    bin = join(app, 'bin', 'cowork-vm.js');

    // A private image cache: the current base image's files, linked (or copied) into a folder the
    // user owns, so the sha256 stamp can be written there. The recipe of the copy hashes the same.
    const cache = join(root, 'cache');
    const imageDir = new ImageStore(
      { cacheDir: cache, stateDir: '', configDir: '' },
      { recipeRoot: app },
    ).imageDir(IMAGE);
    expect(imageDir.endsWith(sourceImage.split('/').pop()!)).toBe(true);
    mkdirSync(imageDir, { recursive: true });
    for (const f of readdirSync(sourceImage)) {
      if (f.startsWith('.')) continue; // .verified.json belongs to root's cache
      const from = join(sourceImage, f);
      // The image's files only: root's warm snapshots (warm/) are root's, like its verdicts.
      if (!statSync(from).isFile()) continue;
      try {
        linkSync(from, join(imageDir, f));
      } catch {
        mustRun('cp', ['--preserve=mode', from, join(imageDir, f)]);
      }
    }
    for (const d of [cache, join(cache, 'images'), imageDir]) chownSync(d, user.uid, user.gid);

    ws = join(root, 'ws');
    for (const d of ['ws', 'state', 'config']) {
      mkdirSync(join(root, d), { recursive: true, mode: 0o700 });
      chownSync(join(root, d), user.uid, user.gid);
    }
    // Only what an ordinary login would have: nothing of root's environment leaks in.
    env = {
      PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin',
      HOME: user.home,
      USER: user.name,
      LOGNAME: user.name,
      LANG: 'C.UTF-8',
      COWORK_VM_STATE_DIR: join(root, 'state'),
      COWORK_VM_CONFIG_DIR: join(root, 'config'),
      COWORK_VM_CACHE_DIR: cache,
      COWORK_VM_ACCEL: 'tcg',
    };
  });

  afterAll(() => {
    if (bin && env && user) {
      if (asUser(['status', '--json', '--workspace', ws]).code === 0) asUser(['stop', '--workspace', ws]);
      // A stop that failed leaves processes this file started: end exactly those.
      const left = asUser(['status', '--json', '--workspace', ws]);
      if (left.code === 0) {
        const st = JSON.parse(left.stdout) as { pid?: number; vm?: { pid?: number } };
        for (const pid of [st.vm?.pid, st.pid]) {
          try {
            if (pid) process.kill(pid, 'SIGKILL');
          } catch {
            /* already gone */
          }
        }
      }
    }
    if (user?.created) sh('userdel', ['-r', '-f', user.name]);
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('is really another user: the copy runs as them and cannot read root-only files', () => {
    expect(user.uid).not.toBe(0);
    const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.getuid()))'], {
      uid: user.uid,
      gid: user.gid,
      env,
      encoding: 'utf8',
    });
    expect(r.stdout).toBe(String(user.uid));
    const denied = spawnSync('cat', ['/etc/shadow'], { uid: user.uid, gid: user.gid, env, encoding: 'utf8' });
    expect(denied.status).not.toBe(0);
  });

  it('start --detach, exec, status --json and stop work; guest files belong to the user', async () => {
    const start = asUser(['start', '--detach', '--workspace', ws]);
    expect(start.code, `${start.stdout}\n${start.stderr}`).toBe(0);
    expect(start.stdout).toContain('sandbox running');

    const exec = asUser([
      'exec',
      '--workspace',
      ws,
      '--',
      'echo written-by-guest > /workspace/nr.txt && mkdir -p /workspace/sub && touch /workspace/sub/f',
    ]);
    expect(exec.code, exec.stderr).toBe(0);
    const file = join(ws, 'nr.txt');
    expect(readFileSync(file, 'utf8')).toBe('written-by-guest\n');
    expect(statSync(file).uid).toBe(user.uid);
    expect(statSync(join(ws, 'sub')).uid).toBe(user.uid);
    expect(statSync(join(ws, 'sub', 'f')).uid).toBe(user.uid);
    expect(asUser(['exec', '--workspace', ws, '--', 'exit 5']).code).toBe(5);

    const status = asUser(['status', '--json', '--workspace', ws]);
    expect(status.code, status.stderr).toBe(0);
    const st = JSON.parse(status.stdout) as {
      state: string;
      pid: number;
      vm: { share: string; accel: string; pid?: number };
    };
    expect(st.state).toBe('running');
    expect(st.vm.share).toBe('9p'); // virtiofsd needs root
    expect(st.vm.accel).toBe('tcg');
    // The controller and QEMU run as the user, not as root.
    for (const pid of [st.pid, st.vm.pid]) {
      expect(pid).toBeTypeOf('number');
      expect(statSync(`/proc/${pid}`).uid).toBe(user.uid);
    }

    const stop = asUser(['stop', '--workspace', ws]);
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stdout).toContain('sandbox stopped');
    const after = asUser(['status', '--json', '--workspace', ws]);
    expect(after.code).toBe(3);
    expect(JSON.parse(after.stdout)).toMatchObject({ state: 'stopped' });
    for (const pid of [st.pid, st.vm.pid]) expect(await exited(pid!), `pid ${pid} still runs`).toBe(true);
    expect(readFileSync(file, 'utf8')).toBe('written-by-guest\n');
  });
});
