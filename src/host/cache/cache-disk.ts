import { execFileSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { CoworkError } from '../errors.js';
import { requireProvided } from '../host-requirements.js';
import type { HostPaths } from '../paths.js';
import { workspaceId } from '../paths.js';

/**
 * Cache disks: one sparse ext4 image per workspace (or one named, shared one when configured)
 * that the guest mounts at the agent's cache folders, so `pip install` and `npm ci` do not start
 * from nothing after every clean start. Everything else of the guest's root stays throwaway.
 *
 * The disk is written by the guest, so it is untrusted data to the host: the host creates the
 * file (truncate + mke2fs on a file it just made, never on one the guest wrote), reads its size
 * with stat, and deletes it. It never mounts, fscks, resizes or parses it, and QEMU opens it with
 * `format=raw` so no image-format probing happens on guest-written bytes.
 *
 * Layout: `<state>/caches/<name>.ext4` with `<name>.json` (what the host knows about it, written
 * only by the host) and `<name>.inuse` (the pid of the controller using it).
 */

export const CACHE_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;

export interface CacheDiskInfo {
  name: string;
  path: string;
  /** The cap: the disk's apparent size. */
  sizeBytes: number;
  /** What it takes on the host's disk now (sparse). */
  usedBytes: number;
  /** 'workspace' (one workspace's) or 'shared' (named in config, any workspace may use it). */
  kind: 'workspace' | 'shared';
  /** Workspaces that have used it (one for a workspace cache). */
  workspaces: string[];
  createdAt: string;
  lastUsedAt?: string;
  /** The pid of the running controller using it, if any. */
  inUseBy?: number;
}

interface CacheMeta {
  kind: 'workspace' | 'shared';
  workspaces: string[];
  createdAt: string;
  lastUsedAt?: string;
}

export function cachesDir(paths: HostPaths): string {
  return join(paths.stateDir, 'caches');
}

/** The cache a workspace uses: its own, or the shared one config names. */
export function cacheNameFor(workspace: string, shared: string | undefined): string {
  return shared ? `shared-${shared}` : `ws-${workspaceId(workspace)}`;
}

export interface EnsureCacheOptions {
  paths: HostPaths;
  workspace: string;
  /** Name of a shared cache from config; absent = the workspace's own. */
  shared?: string;
  sizeGiB: number;
  /** Owner of the file system's root folder (the agent in the guest). */
  owner: { uid: number; gid: number };
  onNotice?: (line: string) => void;
}

/**
 * The cache disk for this start, created when missing. Marks it in use by this process; the
 * returned `release` clears that. A disk in use by another live controller is refused (QEMU
 * would refuse its write lock anyway, later and less clearly).
 */
export function ensureCacheDisk(opts: EnsureCacheOptions): { info: CacheDiskInfo; release: () => void } {
  const dir = cachesDir(opts.paths);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const name = cacheNameFor(opts.workspace, opts.shared);
  const file = join(dir, `${name}.ext4`);
  const wantBytes = opts.sizeGiB * 1024 ** 3;
  claimInUse(dir, name);
  const release = () => rmSync(join(dir, `${name}.inuse`), { force: true });
  try {
    if (!existsSync(file)) createDisk(file, wantBytes, opts.owner);
    else {
      const have = statSync(file).size;
      if (have !== wantBytes)
        opts.onNotice?.(
          `cache disk ${name} is ${gib(have)} GiB, not the configured ${opts.sizeGiB} GiB: it is never resized (that would mean parsing a guest-written file system on the host) — \`cowork-vm cache rm ${name}\` and start again for the new size`,
        );
    }
    const meta = readMeta(dir, name) ?? {
      kind: opts.shared ? 'shared' : 'workspace',
      workspaces: [],
      createdAt: new Date().toISOString(),
    };
    if (!meta.workspaces.includes(opts.workspace)) meta.workspaces.push(opts.workspace);
    meta.lastUsedAt = new Date().toISOString();
    writeMeta(dir, name, meta);
    return { info: describe(dir, name, meta), release };
  } catch (err) {
    release();
    throw err;
  }
}

export function listCacheDisks(paths: HostPaths): CacheDiskInfo[] {
  const dir = cachesDir(paths);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ext4') && CACHE_NAME.test(f.slice(0, -5)))
    .map((f) => f.slice(0, -5))
    .map((name) => describe(dir, name, readMeta(dir, name)))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Deletes a cache disk; refused while a running sandbox uses it. */
export function removeCacheDisk(paths: HostPaths, name: string): CacheDiskInfo {
  if (!CACHE_NAME.test(name)) {
    throw new CoworkError(
      'invalidArgument',
      `cache name ${JSON.stringify(name)} is not one cowork-vm makes (a-z, 0-9, -; up to 32) — \`cowork-vm cache ls\` lists them`,
    );
  }
  const dir = cachesDir(paths);
  const file = join(dir, `${name}.ext4`);
  if (!existsSync(file))
    throw new CoworkError('notFound', `no cache disk ${name} — \`cowork-vm cache ls\` lists them`);
  const info = describe(dir, name, readMeta(dir, name));
  if (info.inUseBy !== undefined) {
    throw new CoworkError(
      'invalidState',
      `cache disk ${name} is in use by the running sandbox (controller pid ${info.inUseBy}) — stop it first (\`cowork-vm stop\`)`,
    );
  }
  rmSync(file, { force: true });
  rmSync(join(dir, `${name}.json`), { force: true });
  return info;
}

/** A sparse file of the cap's size, formatted ext4 with the agent owning its root. */
function createDisk(file: string, bytes: number, owner: { uid: number; gid: number }): void {
  const mke2fs = requireProvided('mke2fs');
  const tmp = `${file}.new`;
  rmSync(tmp, { force: true });
  try {
    // ftruncate(2): sparse, nothing is written but the file system's metadata.
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      ftruncateSync(fd, bytes);
    } finally {
      closeSync(fd);
    }
    execFileSync(
      mke2fs,
      [
        '-q',
        '-F',
        '-t',
        'ext4',
        '-L',
        'cowork-cache',
        '-m',
        '0',
        '-E',
        `root_owner=${owner.uid}:${owner.gid},lazy_itable_init=1,lazy_journal_init=1,discard`,
        tmp,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    const why = (err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message;
    throw new CoworkError('unavailable', `cannot create the cache disk ${file}: ${why}`, err);
  }
}

function claimInUse(dir: string, name: string): void {
  const marker = join(dir, `${name}.inuse`);
  const pid = inUsePid(dir, name);
  if (pid !== undefined && pid !== process.pid) {
    throw new CoworkError(
      'invalidState',
      `cache disk ${name} is in use by another running sandbox (controller pid ${pid}); a shared cache serves one sandbox at a time — stop that one, or give this workspace its own cache ([cache] shared = "")`,
    );
  }
  writeFileSync(marker, `${process.pid}\n`, { mode: 0o600 });
}

function inUsePid(dir: string, name: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(join(dir, `${name}.inuse`), 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
  }
}

function readMeta(dir: string, name: string): CacheMeta | undefined {
  try {
    const m = JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) as CacheMeta;
    return Array.isArray(m.workspaces) ? m : undefined;
  } catch {
    return undefined;
  }
}

function writeMeta(dir: string, name: string, meta: CacheMeta): void {
  const tmp = join(dir, `${name}.json.tmp`);
  writeFileSync(tmp, `${JSON.stringify(meta, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, join(dir, `${name}.json`));
}

function describe(dir: string, name: string, meta: CacheMeta | undefined): CacheDiskInfo {
  const path = join(dir, `${name}.ext4`);
  const st = statSync(path);
  const inUseBy = inUsePid(dir, name);
  return {
    name,
    path,
    sizeBytes: st.size,
    usedBytes: st.blocks * 512,
    kind: meta?.kind ?? (name.startsWith('shared-') ? 'shared' : 'workspace'),
    workspaces: meta?.workspaces ?? [],
    createdAt: meta?.createdAt ?? st.birthtime.toISOString(),
    ...(meta?.lastUsedAt ? { lastUsedAt: meta.lastUsedAt } : {}),
    ...(inUseBy !== undefined ? { inUseBy } : {}),
  };
}

function gib(bytes: number): string {
  return (bytes / 1024 ** 3).toFixed(1);
}
