import { randomBytes } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  readFileSync,
  readlinkSync,
  renameSync,
  type Stats,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { FolderTrees } from './folder-trees.js';
import type { StoreGit } from './git.js';
import type { ObjectStore } from './objects.js';
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
  /** Path → state (a Map: a file may be called `__proto__` or `constructor`). */
  files: Map<string, FileState>;
  skipped: SkippedFile[];
}

export interface SnapshotOptions {
  /** gitignore-style patterns left out of every checkpoint, on top of the workspace's .gitignore files. */
  exclude: string[];
  /** Files larger than this are reported as skipped instead of stored. */
  maxFileBytes: number;
}

/** The path's lstat differs from `before` (or it is gone): it changed after `before` was taken. */
function changedSince(path: string, before: Stats | undefined): boolean {
  const now = lstatSync(path, { throwIfNoEntry: false });
  if (!now || !before) return true;
  return (
    now.ino !== before.ino ||
    now.size !== before.size ||
    now.mode !== before.mode ||
    now.mtimeMs !== before.mtimeMs ||
    now.ctimeMs !== before.ctimeMs
  );
}

/**
 * Reads the workspace into the store. The list of files is git's own (`ls-files --others
 * --exclude-standard`, so `.gitignore` files, `info/exclude` and our exclude list mean exactly what
 * they mean to git; `.git` is never listed, nested repositories are walked as folders of their
 * own). The store keeps a git index of the workspace (`<store>/index`) only as a stat cache: after
 * the first snapshot, `git diff-files` (stat changed, in C) and `ls-files --others` (new) name the
 * paths to read again, git's "racy" rule included; every other path keeps its state from the last
 * snapshot. The bytes are always read by us, without following links, and written as blobs; the
 * index is fed with `update-index --info-only` (git computes an id, writes no object), so nothing
 * git reads ever becomes content of a checkpoint.
 */
export class Snapshotter {
  readonly #latestFile: string;
  readonly #genFile: string;
  readonly #indexFile: string;
  /** The last snapshot; `trees` (its folders' tree ids) only when this process wrote it. */
  #prev: { gen: string; snap: Snapshot; racy: string[]; trees?: FolderTrees } | undefined;
  readonly #optsKey: string;

  constructor(
    private readonly git: StoreGit,
    private readonly objects: ObjectStore,
    private readonly workspaceReal: string,
    private readonly opts: SnapshotOptions,
  ) {
    this.#latestFile = join(git.root, 'latest.json');
    this.#genFile = join(git.root, 'latest.gen');
    this.#indexFile = join(git.root, 'index');
    this.#optsKey = JSON.stringify([workspaceReal, opts.exclude, opts.maxFileBytes]);
  }

  async take(): Promise<Snapshot> {
    const started = Date.now();
    const last = this.#loadPrev();
    const prev = last?.snap;
    const files = new Map(prev?.files);
    const skipped: SkippedFile[] = [];
    let candidates: string[];
    if (prev) {
      const [dirty, fresh] = await Promise.all([this.#dirty(), this.#list('', this.#indexFile)]);
      candidates = [...new Set([...dirty, ...fresh, ...(last?.racy ?? [])])];
    } else {
      // No usable stat cache (first snapshot, other options, a damaged store): read everything.
      try {
        unlinkSync(this.#indexFile);
      } catch {}
      candidates = await this.#list('', join(this.git.root, 'no-index'));
    }
    const base = `${this.workspaceReal}/`;
    const stored: string[] = [];
    const gone: string[] = [];
    // Git compares times by the second: a path recorded within ~a second of this snapshot could
    // change again (chmod, same-size rewrite) without git seeing it, so the next snapshot reads
    // it again whatever git says (git's own "racy" rule covers content, not permission bits).
    const racy: string[] = [];
    const readStats = new Map<string, Stats>();
    const realDirs = new Map<string, boolean>();
    let bytesRead = 0;
    for (const rel of candidates) {
      // A folder on the way swapped for a link (or a file) puts the path out of the workspace: gone.
      const st = this.#underRealDirs(rel, realDirs)
        ? lstatSync(base + rel, { throwIfNoEntry: false })
        : undefined;
      const state = st ? this.#read(rel, st, skipped) : undefined;
      if (state && st) {
        files.set(rel, state);
        bytesRead += state.size;
        stored.push(rel);
        readStats.set(rel, st);
        if (st && Math.max(st.mtimeMs, st.ctimeMs) >= started - 2000) racy.push(rel);
      } else {
        files.delete(rel);
        gone.push(rel);
      }
    }
    // A path the index does not match yet is read again next time (on the racy list, since git
    // names a changed one but not a new one that is gone again), so updating the index can wait
    // until re-reading costs more than the update (~15 ms for 20,000 paths): never wrong, slower.
    let indexed: Promise<void> | undefined;
    if (candidates.length > REREAD_PATHS || bytesRead > REREAD_BYTES || !prev) {
      // The stat cache is about to change: until the new snapshot is saved, no snapshot goes with
      // it (a controller killed in between leaves the next snapshot to read everything).
      try {
        unlinkSync(this.#genFile);
      } catch {}
      // git updates the index while the trees and the JSON are made here.
      indexed = this.#updateIndex(stored, gone);
    }
    const trees = last?.trees
      ? last.trees.next(this.objects, files, candidates)
      : FolderTrees.build(this.objects, files);
    const tree = trees.root;
    const snap: Snapshot = { tree, at: new Date(started).toISOString(), files, skipped };
    if (prev) derived.set(snap, { base: prev, touched: candidates });
    const text = this.#serialize(snap);
    await indexed;
    // git stats and hashes a file itself when it updates the index, after we read it: a write in
    // between would leave the index clean for bytes this snapshot never saw. A path whose stat now
    // differs from the one taken before our read is read again next time, whatever git says.
    if (indexed) for (const rel of stored) if (changedSince(base + rel, readStats.get(rel))) racy.push(rel);
    // Paths left out of the index are read again next time too: git cannot name one that goes.
    this.#savePrev(snap, indexed ? racy : [...new Set([...racy, ...stored])], trees, text);
    return snap;
  }

  /** When `snap` was made from `base` by re-reading only `touched`: every other path is as in `base`. */
  static derivation(snap: Snapshot): { base: Snapshot; touched: string[] } | undefined {
    return derived.get(snap);
  }

  /** Every folder on the way to `rel` is a real folder (lstat, not a link), memoized per snapshot. */
  #underRealDirs(rel: string, memo: Map<string, boolean>): boolean {
    let i = rel.indexOf('/');
    while (i !== -1) {
      const dir = rel.slice(0, i);
      let ok = memo.get(dir);
      if (ok === undefined) {
        ok = lstatSync(join(this.workspaceReal, dir), { throwIfNoEntry: false })?.isDirectory() === true;
        memo.set(dir, ok);
      }
      if (!ok) return false;
      i = rel.indexOf('/', i + 1);
    }
    return true;
  }

  #read(rel: string, st: Stats, skipped: SkippedFile[]): FileState | undefined {
    if (!st.isFile() && !st.isSymbolicLink()) {
      if (!st.isDirectory())
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
    const body = st.isSymbolicLink()
      ? readlinkSync(join(this.workspaceReal, rel), { encoding: 'buffer' })
      : readNoFollow(this.workspaceReal, rel, this.opts.maxFileBytes);
    if (!body) return undefined; // replaced by something else since the lstat
    const kind = st.isSymbolicLink() ? 'link' : 'file';
    return {
      kind,
      mode: kind === 'link' ? 0o777 : st.mode & 0o7777,
      oid: this.objects.write('blob', body),
      size: body.length,
      ...(kind === 'file' && body.subarray(0, 8000).includes(0) ? { binary: true } : {}),
    };
  }

  #wsEnv(prefix: string, index: string): Record<string, string> {
    return { GIT_WORK_TREE: join(this.workspaceReal, prefix), GIT_INDEX_FILE: index };
  }

  /** Paths of the index whose stat changed (or that are gone): git's own check, racy entries included. */
  async #dirty(): Promise<string[]> {
    const out = await this.git.run(['diff-files', '-z', '--name-only', '--no-renames'], {
      env: this.#wsEnv('', this.#indexFile),
    });
    return out.toString('utf8').split('\0').filter(Boolean);
  }

  /** Records the stat of what was just read (ids only: --info-only writes no object) and drops the rest. */
  async #updateIndex(stored: string[], gone: string[]): Promise<void> {
    const env = this.#wsEnv('', this.#indexFile);
    const feed = (args: string[], paths: string[]) =>
      paths.length
        ? this.git.run(['update-index', '-z', ...args, '--stdin'], { env, input: paths.join('\0') })
        : undefined;
    try {
      await feed(['--force-remove'], gone);
      await feed(['--add', '--remove', '--info-only', '--ignore-missing'], stored);
    } catch {
      // The snapshot stands on its own; without a trustworthy stat cache the next one reads everything.
      try {
        unlinkSync(this.#indexFile);
      } catch {}
    }
  }

  /** Untracked (not in `index`), not ignored paths under `prefix`. */
  async #list(prefix: string, index: string): Promise<string[]> {
    const args = ['ls-files', '-z', '--others', '--exclude-standard'];
    for (const x of this.opts.exclude) args.push(`--exclude=${x}`);
    const out = await this.git.run(args, {
      env: this.#wsEnv(prefix, prefix ? join(this.git.root, 'no-index') : index),
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
      const st = lstatSync(join(this.workspaceReal, rel.slice(0, -1)), { throwIfNoEntry: false });
      if (st?.isDirectory()) result.push(...(await this.#list(rel, index)));
    }
    return result;
  }

  /** The last snapshot, when it was taken with these options and the index is there. */
  #loadPrev(): { snap: Snapshot; racy: string[]; trees?: FolderTrees } | undefined {
    let gen: string;
    try {
      gen = readFileSync(this.#genFile, 'utf8');
    } catch {
      return undefined;
    }
    if (!existsSync(this.#indexFile)) return undefined;
    if (this.#prev?.gen === gen) return this.#prev;
    try {
      const saved = JSON.parse(readFileSync(this.#latestFile, 'utf8')) as {
        gen: string;
        opts: string;
        snap: SnapshotJson;
        racy?: string[];
      };
      if (saved.gen !== gen || saved.opts !== this.#optsKey) return undefined;
      this.#prev = { gen, snap: fromJson(saved.snap), racy: saved.racy ?? [] };
      return this.#prev;
    } catch {
      return undefined;
    }
  }

  /** The snapshot as JSON: serialized once, for latest.json and for the checkpoint's own file. */
  jsonOf(snap: Snapshot): string {
    if (this.#json?.snap === snap) return this.#json.text;
    return this.#serialize(snap);
  }

  #json: { snap: Snapshot; text: string } | undefined;

  /**
   * JSON.stringify(snap), byte for byte, with each path's `"path":{…}` kept from the last time
   * (FileState objects are never changed once made, so one serialized is serialized for good).
   */
  #serialize(snap: Snapshot): string {
    const parts: string[] = [];
    for (const [rel, state] of snap.files) {
      let known = fragments.get(state);
      if (known?.rel !== rel) {
        known = { rel, part: `${JSON.stringify(rel)}:${JSON.stringify(state)}` };
        fragments.set(state, known);
      }
      parts.push(known.part);
    }
    return `{"tree":${JSON.stringify(snap.tree)},"at":${JSON.stringify(snap.at)},"files":{${parts.join(',')}},"skipped":${JSON.stringify(snap.skipped)}}`;
  }

  #savePrev(snap: Snapshot, racy: string[], trees: FolderTrees, text: string): void {
    const gen = randomBytes(8).toString('hex');
    const tmp = `${this.#latestFile}.tmp`;
    this.#json = { snap, text };
    writeFileSync(
      tmp,
      `{"gen":${JSON.stringify(gen)},"opts":${JSON.stringify(this.#optsKey)},"racy":${JSON.stringify(racy)},"snap":${text}}`,
    );
    renameSync(tmp, this.#latestFile);
    writeFileSync(`${this.#genFile}.tmp`, gen);
    renameSync(`${this.#genFile}.tmp`, this.#genFile);
    this.#prev = { gen, snap, racy, trees };
  }
}

/** A snapshot as its JSON holds it: `files` an object keyed by path. */
type SnapshotJson = Omit<Snapshot, 'files'> & { files: Record<string, FileState> };

function fromJson(j: SnapshotJson): Snapshot {
  return { tree: j.tree, at: j.at, files: new Map(Object.entries(j.files)), skipped: j.skipped };
}

/** A snapshot from its JSON file (what `Snapshotter.jsonOf` wrote). */
export function parseSnapshot(text: string): Snapshot {
  return fromJson(JSON.parse(text) as SnapshotJson);
}

/** Past this many paths or bytes read again, a snapshot brings the index (the stat cache) up to date. */
const REREAD_PATHS = 256;
const REREAD_BYTES = 8 * 1024 * 1024;

/** Snapshots this process made from an earlier one, and the paths it re-read to make them. */
const derived = new WeakMap<Snapshot, { base: Snapshot; touched: string[] }>();
/** Each FileState's `"path":{…}` JSON, made once. */
const fragments = new WeakMap<FileState, { rel: string; part: string }>();
