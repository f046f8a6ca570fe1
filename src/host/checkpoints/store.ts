import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { CoworkError } from '../errors.js';
import { type Change, type ChangeSet, changeSet, sameState } from './changes.js';
import { StoreGit } from './git.js';
import { withStoreLock } from './lock.js';
import { ObjectStore } from './objects.js';
import { SafeDir } from './safe-fs.js';
import {
  parseSnapshot,
  type SkippedFile,
  type Snapshot,
  type SnapshotOptions,
  Snapshotter,
} from './snapshot.js';

export interface SnapshotSummary {
  tree: string;
  at: string;
  files: number;
  skipped: number;
  /** The first 50 files it could not store, and why. */
  skippedFiles: SkippedFile[];
}

/** One checkpointed unit of work: an agent task, an `exec --context agent` outside a task, or an undo. */
export interface CheckpointRecord {
  id: string;
  kind: 'task' | 'exec' | 'undo';
  label: string;
  /** The timeline task it belongs to (tasks), or none. */
  taskId?: string;
  /** For an undo: the checkpoint it undid. */
  undoOf?: string;
  createdAt: string;
  before: SnapshotSummary;
  /** Absent while the work runs — or when the controller died before it ended (then `diff` compares with now). */
  after?: SnapshotSummary;
}

export interface UndoResult {
  undo: string;
  of: string;
  restored: string[];
  removed: string[];
  conflicts: string[];
  forced: boolean;
}

/** What a checkpoint's change set is compared with: its own end, or the workspace now. */
export interface CheckpointDiff extends ChangeSet {
  record: CheckpointRecord;
  /** true: the work never recorded its end (still running, or the controller was killed); compared with now. */
  live: boolean;
  beforeTree: string;
  afterTree: string;
}

/**
 * Checkpoints of one workspace, kept in the sandbox's state dir (`<state>/checkpoints/`): a git
 * object store of our own (see git.ts for its isolation), one JSON snapshot per checkpoint
 * (exact permission bits and link targets, which git trees do not keep) and one record per unit
 * of work. Records and snapshots are written whole, fsynced and renamed into place, so a
 * controller killed at any point leaves every checkpoint it had begun.
 */
export class CheckpointStore {
  readonly #git: StoreGit;
  readonly #objects: ObjectStore;
  readonly #snap: Snapshotter;
  readonly #root: string;
  readonly workspaceReal: string;

  private constructor(root: string, workspace: string, opts: SnapshotOptions) {
    this.#root = root;
    this.workspaceReal = realpathSync(workspace);
    this.#git = new StoreGit(root);
    this.#objects = new ObjectStore(this.#git.gitDir);
    this.#snap = new Snapshotter(this.#git, this.#objects, this.workspaceReal, opts);
  }

  static async open(stateDir: string, workspace: string, opts: SnapshotOptions): Promise<CheckpointStore> {
    const store = new CheckpointStore(join(stateDir, 'checkpoints'), workspace, opts);
    await store.#git.init();
    mkdirSync(join(store.#root, 'records'), { recursive: true });
    mkdirSync(join(store.#root, 'snapshots'), { recursive: true });
    return store;
  }

  /** Records the workspace as it is now, as the start of a unit of work. */
  begin(meta: {
    id?: string;
    kind: CheckpointRecord['kind'];
    label: string;
    taskId?: string;
    undoOf?: string;
  }): Promise<CheckpointRecord> {
    return this.#locked(async () => {
      const id = meta.id ?? `${meta.kind === 'undo' ? 'u' : 'x'}-${randomBytes(5).toString('hex')}`;
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(id))
        throw new CoworkError('invalidArgument', `bad checkpoint id ${id}`);
      if (existsSync(this.#recordFile(id))) throw new CoworkError('invalidState', `checkpoint ${id} exists`);
      const snap = await this.#snap.take();
      this.#writeSnap(id, 'before', snap);
      const record: CheckpointRecord = {
        id,
        kind: meta.kind,
        label: meta.label,
        ...(meta.taskId ? { taskId: meta.taskId } : {}),
        ...(meta.undoOf ? { undoOf: meta.undoOf } : {}),
        createdAt: snap.at,
        before: summary(snap),
      };
      this.#writeJson(this.#recordFile(id), record);
      return record;
    });
  }

  /** Records the workspace as the end of `id`'s work; returns its change set. */
  finish(id: string): Promise<CheckpointDiff> {
    return this.#locked(async () => {
      const record = this.get(id);
      const snap = await this.#snap.take();
      this.#writeSnap(id, 'after', snap);
      const done: CheckpointRecord = { ...record, after: summary(snap) };
      this.#writeJson(this.#recordFile(id), done);
      const before = this.#readSnap(id, 'before');
      const from = Snapshotter.derivation(snap);
      return {
        ...changeSet(before, snap, from?.base === before ? from.touched : undefined),
        record: done,
        live: false,
        beforeTree: before.tree,
        afterTree: snap.tree,
      };
    });
  }

  get(id: string): CheckpointRecord {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id) || !existsSync(this.#recordFile(id)))
      throw new CoworkError('notFound', `no checkpoint ${id} — list them with \`cowork-vm checkpoints\``);
    return JSON.parse(readFileSync(this.#recordFile(id), 'utf8')) as CheckpointRecord;
  }

  /** Every checkpoint, oldest first. */
  list(): CheckpointRecord[] {
    const dir = join(this.#root, 'records');
    return readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as CheckpointRecord)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  /** `id`'s change set: before → its recorded end, or before → now when it never recorded one. */
  diff(id: string): Promise<CheckpointDiff> {
    return this.#locked(async () => this.#diff(id));
  }

  async #diff(id: string): Promise<CheckpointDiff & { beforeSnap: Snapshot; afterSnap: Snapshot }> {
    const record = this.get(id);
    const before = this.#readSnap(id, 'before');
    const live = !record.after;
    const after = live ? await this.#snap.take() : this.#readSnap(id, 'after');
    return {
      ...changeSet(before, after),
      record,
      live,
      beforeTree: before.tree,
      afterTree: after.tree,
      beforeSnap: before,
      afterSnap: after,
    };
  }

  /** A unified diff of the change set (git's, binary-aware), from the store only. */
  async patch(d: CheckpointDiff, opts: { stat?: boolean } = {}): Promise<string> {
    // Without --binary: a binary file is "Binary files … differ", not a base85 patch.
    const args = ['diff-tree', '-r', '--no-ext-diff', '--no-textconv', '--no-renames', '--no-color'];
    args.push(opts.stat ? '--stat=120' : '-p');
    return (await this.#git.run([...args, d.beforeTree, d.afterTree])).toString('utf8');
  }

  /** A link target or a file's bytes, from the store. */
  blob(oid: string): Buffer {
    return this.#objects.read(oid).body;
  }

  /**
   * Puts back what `id` changed, as it was before `id`. A path that changed again since `id`
   * ended (someone edited it) is a conflict: nothing is touched unless `force`. The undo is a
   * checkpoint of its own (`u-…`), so it can be undone too. Nothing is written through a
   * symbolic link: links and files the work created are removed as themselves.
   */
  undo(id: string, opts: { force?: boolean } = {}): Promise<UndoResult> {
    return this.#locked(async () => {
      const d = await this.#diff(id);
      const target = d.afterSnap; // what the work left (or the workspace now, if it never recorded an end)
      const now = d.live ? d.afterSnap : await this.#snap.take();
      const conflicts = d.changes
        .filter((c) => !sameState(now.files.get(c.path), target.files.get(c.path)))
        .map((c) => c.path);
      if (conflicts.length > 0 && !opts.force)
        throw new CoworkError(
          'invalidState',
          `undo ${id} refused: changed since ${id} ended: ${conflicts.slice(0, 10).join(', ')}${conflicts.length > 10 ? ` and ${conflicts.length - 10} more` : ''} — nothing was touched; \`cowork-vm undo ${id} --force\` overwrites them`,
        );
      const undoId = `u-${randomBytes(5).toString('hex')}`;
      this.#writeSnap(undoId, 'before', now);
      const record: CheckpointRecord = {
        id: undoId,
        kind: 'undo',
        label: `undo ${id}`,
        undoOf: id,
        createdAt: now.at,
        before: summary(now),
      };
      this.#writeJson(this.#recordFile(undoId), record);
      const result = this.#apply(d.changes, d.beforeSnap, now);
      const after = await this.#snap.take();
      this.#writeSnap(undoId, 'after', after);
      this.#writeJson(this.#recordFile(undoId), { ...record, after: summary(after) });
      return { undo: undoId, of: id, ...result, conflicts, forced: conflicts.length > 0 };
    });
  }

  #apply(changes: Change[], before: Snapshot, now: Snapshot): { restored: string[]; removed: string[] } {
    const ws = this.workspaceReal;
    const removed: string[] = [];
    const restored: string[] = [];
    // Whatever stands where the earlier state needs a folder (a file or link the work put there) goes first.
    const toRemove = new Set<string>();
    for (const c of changes) {
      if (!c.before) toRemove.add(c.path);
      else
        for (const anc of ancestors(c.path))
          if (now.files.has(anc) && !before.files.has(anc)) toRemove.add(anc);
    }
    for (const path of [...toRemove].sort((a, b) => b.length - a.length)) {
      const dir = SafeDir.open(ws, dirname(path) === '.' ? '' : dirname(path), false);
      try {
        dir.remove(basename(path));
        removed.push(path);
      } finally {
        dir.close();
      }
    }
    for (const c of changes) {
      const state = c.before;
      if (!state) continue;
      const parent = dirname(c.path) === '.' ? '' : dirname(c.path);
      const dir = SafeDir.open(ws, parent, true);
      try {
        const body = this.#objects.read(state.oid).body;
        if (state.kind === 'link') dir.writeLink(basename(c.path), body.toString('utf8'));
        else dir.writeFile(basename(c.path), body, state.mode);
        restored.push(c.path);
      } finally {
        dir.close();
      }
    }
    this.#pruneEmpty(removed, before);
    return { restored, removed };
  }

  /** Folders left empty by removing what the work created, and that held nothing before it, go too. */
  #pruneEmpty(removed: string[], before: Snapshot): void {
    const kept = new Set<string>();
    for (const p of before.files.keys()) for (const a of ancestors(p)) kept.add(a);
    const candidates = new Set<string>();
    for (const p of removed) for (const a of ancestors(p)) if (!kept.has(a)) candidates.add(a);
    for (const dirPath of [...candidates].sort((a, b) => b.length - a.length)) {
      const parent = dirname(dirPath) === '.' ? '' : dirname(dirPath);
      let dir: SafeDir;
      try {
        dir = SafeDir.open(this.workspaceReal, parent, false);
      } catch {
        continue;
      }
      try {
        const st = dir.lstat(basename(dirPath));
        if (st?.isDirectory() && readdirSync(dir.entry(basename(dirPath))).length === 0)
          dir.remove(basename(dirPath));
      } finally {
        dir.close();
      }
    }
  }

  #locked<T>(fn: () => Promise<T>): Promise<T> {
    return withStoreLock(join(this.#root, 'lock'), fn);
  }

  #recordFile(id: string): string {
    return join(this.#root, 'records', `${id}.json`);
  }

  #snapFile(id: string, which: 'before' | 'after'): string {
    return join(this.#root, 'snapshots', `${id}.${which}.json`);
  }

  /** Snapshots this process wrote lately (they never change once written), so finish need not re-read them. */
  readonly #recent = new Map<string, Snapshot>();

  #writeSnap(id: string, which: 'before' | 'after', snap: Snapshot): void {
    const file = this.#snapFile(id, which);
    this.#writeJson(file, this.#snap.jsonOf(snap));
    this.#recent.set(file, snap);
    if (this.#recent.size > 8) this.#recent.delete(this.#recent.keys().next().value as string);
  }

  #readSnap(id: string, which: 'before' | 'after'): Snapshot {
    const known = this.#recent.get(this.#snapFile(id, which));
    if (known) return known;
    try {
      return parseSnapshot(readFileSync(this.#snapFile(id, which), 'utf8'));
    } catch (err) {
      throw new CoworkError('notFound', `checkpoint ${id} has no ${which} snapshot in the store`, err);
    }
  }

  /** Written whole and fsynced, then renamed into place (and the folder fsynced). */
  #writeJson(file: string, value: unknown): void {
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    const dfd = openSync(dirname(file), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  }
}

function summary(s: Snapshot): CheckpointRecord['before'] {
  return {
    tree: s.tree,
    at: s.at,
    files: s.files.size,
    skipped: s.skipped.length,
    skippedFiles: s.skipped.slice(0, 50),
  };
}

function ancestors(path: string): string[] {
  const parts = path.split('/');
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}
