import { randomBytes } from 'node:crypto';
import { lstatSync, readFileSync, readlinkSync, renameSync, type Stats, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StoreGit } from './git.js';
import { type ObjectStore, type TreeEntry, writeTrees } from './objects.js';
import { readNoFollow } from './safe-fs.js';

/** One workspace entry as a checkpoint holds it. Folders are implied by their files (as in git). */
export interface FileState {
  kind: 'file' | 'link';
  /** Permission bits exactly (0o644, 0o600, 0o4755…); 0o777 for links. */
  mode: number;
  /** The blob: the file's bytes, or the link's target. */
  oid: string;
  size: number;
  /** Git's heuristic: a NUL in the first 8,000 bytes. */
  binary?: boolean;
}

/** A file the checkpoint did not store, and why — reported, never silently lost. */
export interface SkippedFile {
  path: string;
  size: number;
  reason: string;
}

export interface Snapshot {
  tree: string;
  at: string;
  files: Record<string, FileState>;
  skipped: SkippedFile[];
}

export interface SnapshotOptions {
  /** gitignore-style patterns left out of every checkpoint, on top of the workspace's .gitignore files. */
  exclude: string[];
  /** Files larger than this are reported as skipped instead of stored. */
  maxFileBytes: number;
}

type CacheRow = [stamp: string, kind: 'file' | 'link', mode: number, oid: string, size: number, bin: 0 | 1];

/**
 * Reads the workspace into the store. The list of files is git's own (`ls-files --others
 * --exclude-standard` against an empty index, so `.gitignore` files, `info/exclude` and our
 * exclude list mean exactly what they mean to git; `.git` is never listed, nested repositories
 * are walked as folders of their own). Every entry is lstat'ed; a file whose stat is unchanged
 * since the last snapshot keeps its blob (git's index does the same), others are read without
 * following links and written as blobs.
 */
export class Snapshotter {
  readonly #cacheFile: string;
  #cache: Map<string, CacheRow> | undefined;
  /** Tree ids by their listing, so an unchanged folder is not hashed again. */
  readonly #trees = new Map<string, string>();

  constructor(
    private readonly git: StoreGit,
    private readonly objects: ObjectStore,
    private readonly workspaceReal: string,
    private readonly opts: SnapshotOptions,
  ) {
    this.#cacheFile = join(git.root, 'stat-cache.json');
  }

  async take(): Promise<Snapshot> {
    const started = Date.now();
    const paths = await this.#list('');
    const cache = this.#loadCache();
    const next = new Map<string, CacheRow>();
    const files: Record<string, FileState> = {};
    const skipped: SkippedFile[] = [];
    const entries = new Map<string, TreeEntry>();
    const base = `${this.workspaceReal}/`;
    for (const rel of paths) {
      const st = lstatSync(base + rel, { throwIfNoEntry: false });
      if (!st) continue; // gone since git listed it
      const state = this.#state(rel, st, cache, next, started, skipped);
      if (!state) continue;
      files[rel] = state;
      entries.set(rel, {
        mode: state.kind === 'link' ? '120000' : state.mode & 0o111 ? '100755' : '100644',
        oid: state.oid,
      });
    }
    const tree = writeTrees(this.objects, entries, this.#trees);
    this.#saveCache(next);
    return { tree, at: new Date(started).toISOString(), files, skipped };
  }

  #state(
    rel: string,
    st: Stats,
    cache: Map<string, CacheRow>,
    next: Map<string, CacheRow>,
    started: number,
    skipped: SkippedFile[],
  ): FileState | undefined {
    if (!st.isFile() && !st.isSymbolicLink()) {
      skipped.push({ path: rel, size: st.size, reason: 'not a regular file or a symbolic link' });
      return undefined;
    }
    if (st.isFile() && st.size > this.opts.maxFileBytes) {
      skipped.push({
        path: rel,
        size: st.size,
        reason: `larger than checkpoints.maxFileSizeMB (${Math.round(this.opts.maxFileBytes / 1048576)} MB)`,
      });
      return undefined;
    }
    const stamp = `${st.mtimeMs}:${st.ctimeMs}:${st.ino}:${st.size}:${st.mode}`;
    const hit = cache.get(rel);
    let row: CacheRow | undefined = hit && hit[0] === stamp ? hit : undefined;
    if (!row) {
      const body = st.isSymbolicLink()
        ? readlinkSync(join(this.workspaceReal, rel), { encoding: 'buffer' })
        : readNoFollow(this.workspaceReal, rel, this.opts.maxFileBytes);
      if (!body) return undefined; // replaced by something else since the lstat
      const bin = st.isFile() && body.subarray(0, 8000).includes(0) ? 1 : 0;
      const kind = st.isSymbolicLink() ? 'link' : 'file';
      row = [
        stamp,
        kind,
        kind === 'link' ? 0o777 : st.mode & 0o7777,
        this.objects.write('blob', body),
        body.length,
        bin,
      ];
    }
    // A file changed within the same second as this snapshot could change again unseen by its
    // stamp (git's "racy" entries): it is not cached, so the next snapshot reads it again.
    if (Math.max(st.mtimeMs, st.ctimeMs) < started - 1000) next.set(rel, row);
    return { kind: row[1], mode: row[2], oid: row[3], size: row[4], ...(row[5] ? { binary: true } : {}) };
  }

  async #list(prefix: string): Promise<string[]> {
    const args = ['ls-files', '-z', '--others', '--exclude-standard'];
    for (const x of this.opts.exclude) args.push(`--exclude=${x}`);
    const out = await this.git.run(args, {
      env: {
        GIT_WORK_TREE: join(this.workspaceReal, prefix),
        GIT_INDEX_FILE: join(this.git.root, `empty-index-${randomBytes(4).toString('hex')}`),
      },
    });
    const result: string[] = [];
    for (const name of out.toString('utf8').split('\0')) {
      if (!name) continue;
      const rel = prefix + name;
      if (!rel.endsWith('/')) {
        result.push(rel);
        continue;
      }
      // A nested repository: git lists it as one folder; its files are walked with its own ignores.
      const dir = rel.slice(0, -1);
      let st: Stats;
      try {
        st = lstatSync(join(this.workspaceReal, dir));
      } catch {
        continue;
      }
      if (st.isDirectory()) result.push(...(await this.#list(rel)));
    }
    return result;
  }

  #loadCache(): Map<string, CacheRow> {
    if (this.#cache) return this.#cache;
    try {
      return new Map(
        Object.entries(JSON.parse(readFileSync(this.#cacheFile, 'utf8')) as Record<string, CacheRow>),
      );
    } catch {
      return new Map();
    }
  }

  #saveCache(next: Map<string, CacheRow>): void {
    this.#cache = next;
    const tmp = `${this.#cacheFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(Object.fromEntries(next)));
    renameSync(tmp, this.#cacheFile);
  }
}
