import { type FSWatcher, mkdirSync, readFileSync, watch, writeFileSync } from 'node:fs';
import { cp, lstat, mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { gitConfigReferences, insideWorkspace } from './git-config-refs.js';
import type { ProtectedPaths } from './protected.js';
import { type ProtectedEntry, scanProtected } from './scan.js';

/**
 * What the guest's init does with each line of the seed's `protect.list` (docs/guest-contract.md):
 * `pin` binds a directory onto itself (a mount point cannot be renamed or removed, so a `.git`
 * stays the same `.git`), `ro` binds a path onto itself read-only.
 */
export interface MountLine {
  op: 'pin' | 'ro';
  rel: string;
}

export interface ProtectedChange {
  path: string;
  change: 'created' | 'replaced';
  action: 'quarantined' | 'quarantine-failed';
  /** Where the host moved it (outside the workspace), when quarantined. */
  quarantinedTo?: string;
  reason: string;
  error?: string;
}

export interface WorkspaceGuardOptions {
  workspace: string;
  /** Quarantine lives here (the sandbox's state dir), never inside the workspace. */
  stateDir: string;
  protect: ProtectedPaths;
  onChange?: (change: ProtectedChange) => void;
  /** Full scans after each command only below this many entries; larger trees rely on the watcher. */
  fullScanLimit?: number;
}

const GUEST_LINE_OK = /^[^\n\r\0\t]+$/;

/** A protected entry known at boot; `mounted`: the guest has it read-only (or pinned). */
interface BaselineEntry extends ProtectedEntry {
  mounted: boolean;
}

/**
 * The host half of the workspace boundary. Before boot it finds what is protected and tells the
 * guest to mount it read-only (`planMounts` → seed `protect.list`); afterwards it watches the
 * workspace and moves any protected path that appears — a `git init` in a subfolder, a new
 * `.envrc`, a `.git/commondir` — out of the workspace into the sandbox's quarantine folder before
 * the host can run it, and reports each one (timeline `workspace.protected_change`, the agent).
 *
 * Paths protected at boot are read-only in the guest, so changes to them can only come from the
 * host user and are accepted. What is created later cannot be told apart from a user's own new
 * file, so it is quarantined whoever made it (the message says where it went).
 */
export class WorkspaceGuard {
  private baseline = new Map<string, BaselineEntry>();
  private watcher?: FSWatcher;
  private running?: Promise<ProtectedChange[]>;
  private again = false;
  private timer?: NodeJS.Timeout;
  private periodic?: NodeJS.Timeout;
  private quarantineSeq = 0;
  private baselineVisited = 0;
  private closed = false;
  /** Every change acted on, in order (bounded), so a command can be told what happened during it. */
  private readonly log: ProtectedChange[] = [];
  private logStart = 0;

  private protect: ProtectedPaths;

  constructor(private readonly opts: WorkspaceGuardOptions) {
    this.protect = opts.protect;
  }

  /** What is protected: the configured paths plus what the repositories' configs point at. */
  get protectedPaths(): ProtectedPaths {
    return this.protect;
  }

  /**
   * Before the guest boots: creates the missing `hooks/` and `info/` of every existing `.git`
   * directory (git creates them itself; an empty one is harmless and lets the guest mount it
   * read-only), records the baseline and returns the mount plan.
   */
  async planMounts(): Promise<MountLine[]> {
    const { workspace } = this.opts;
    let scan = await scanProtected(workspace, this.protect);
    const referenced: string[] = [];
    let created = false;
    for (const e of scan.entries.values()) {
      if (!e.gitDir) continue;
      for (const sub of ['hooks', 'info'])
        created =
          (await mkdir(join(workspace, e.rel, sub)).then(
            () => true,
            () => false,
          )) || created;
      referenced.push(...this.configReferences(e.rel));
    }
    // A second walk only when the first one is out of date (a folder made, more paths protected).
    if (created || referenced.length > 0) {
      this.protect = this.protect.withPaths(referenced);
      scan = await scanProtected(workspace, this.protect);
    }
    this.baselineVisited = scan.visited;
    const lines: MountLine[] = [];
    const sorted = [...scan.entries.values()].sort((a, b) => a.rel.localeCompare(b.rel));
    for (const e of sorted) {
      // A name the seed file cannot carry, or something that is not a plain file or directory,
      // stays unmounted: the watcher treats a new inode there as new. A symlink line is sent
      // too: the guest binds its target read-only when that lies inside the workspace.
      const sendable = GUEST_LINE_OK.test(e.rel) && e.kind !== 'other';
      if (sendable) lines.push({ op: e.gitDir ? 'pin' : 'ro', rel: e.rel });
      this.baseline.set(e.rel, { ...e, mounted: sendable && e.kind !== 'symlink' });
    }
    // Parents before children: a pin of `.git` must come before the ro of `.git/config`.
    lines.sort((a, b) => a.rel.split('/').length - b.rel.split('/').length || (a.op === 'pin' ? -1 : 1));
    return lines;
  }

  /** Hook folders and included config files a repository's config names inside the workspace. */
  private configReferences(gitRel: string): string[] {
    const { workspace } = this.opts;
    const gitDir = join(workspace, gitRel);
    let text: string;
    try {
      text = readFileSync(join(gitDir, 'config'), 'utf8');
    } catch {
      return [];
    }
    const refs = gitConfigReferences(text);
    const worktree = dirname(gitDir);
    return [
      // A relative core.hooksPath is taken from the working tree's top (where hooks run).
      ...refs.hooksPath.map((h) => insideWorkspace(workspace, worktree, h)),
      // include.path is relative to the config file's own folder.
      ...refs.includes.map((i) => insideWorkspace(workspace, gitDir, i)),
    ].filter((r): r is string => r !== null);
  }

  /** Writes the plan where the guest reads it: one `op<TAB>path` line each. */
  static writePlan(seedDir: string, lines: MountLine[]): void {
    const text = lines.map((l) => `${l.op}\t${l.rel}\n`).join('');
    writeFileSync(join(seedDir, 'protect.list'), text, { mode: 0o644 });
  }

  /** Starts watching; also rescans every `periodMs` as a backstop for missed watcher events. */
  watch(periodMs = 30_000): void {
    try {
      this.watcher = watch(this.opts.workspace, { recursive: true, persistent: false }, (_e, name) => {
        if (name && this.relevant(String(name))) this.schedule();
      });
      this.watcher.on('error', () => this.schedule());
    } catch {
      // No recursive watch on this platform: the periodic and per-command scans still run.
    }
    this.periodic = setInterval(() => this.schedule(), periodMs);
    this.periodic.unref();
  }

  /**
   * Which watcher events start a scan. In a small tree any event does (a new folder may already
   * hold a `.git` before its own watch exists). In a large one (a full scan is costly; think of
   * an `npm install` in the guest) only events that name a protected path; what that misses, the
   * periodic rescan finds.
   */
  private relevant(name: string): boolean {
    const rel = name.split(/[\\/]/).join('/');
    if (/(^|\/)\.git\/(objects|lfs|logs)(\/|$)/i.test(rel)) return false;
    if (this.baselineVisited <= (this.opts.fullScanLimit ?? 50_000)) return true;
    return this.protect.isProtected(rel);
  }

  private schedule(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.check();
    }, 25);
    this.timer.unref();
  }

  /**
   * Scans now and quarantines what appeared. Resolves with the changes this scan acted on.
   * Concurrent callers share the scan in flight and then get one more, so a caller never sees a
   * result older than its own call.
   */
  async check(): Promise<ProtectedChange[]> {
    if (this.running) {
      this.again = true;
      const first = await this.running;
      if (this.running) return [...first, ...(await this.running)];
      return [...first, ...(await this.check())];
    }
    this.running = this.scanOnce();
    try {
      return await this.running;
    } finally {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.schedule();
      }
    }
  }

  /** A position in the change log; `afterCommand(mark)` reports what happened since. */
  mark(): number {
    return this.logStart + this.log.length;
  }

  /**
   * After a command: scans (when the tree is small enough to be cheap; larger trees rely on the
   * watcher) and returns every change acted on since `mark` — the watcher may have caught some
   * while the command ran.
   */
  async afterCommand(mark: number): Promise<ProtectedChange[]> {
    if (this.baselineVisited <= (this.opts.fullScanLimit ?? 50_000)) await this.check();
    return this.log.slice(Math.max(0, mark - this.logStart));
  }

  private async scanOnce(): Promise<ProtectedChange[]> {
    const { workspace } = this.opts;
    const scan = await scanProtected(workspace, this.protect);
    const changes: ProtectedChange[] = [];
    const key = (e: ProtectedEntry) => `${e.dev}:${e.ino}:${e.kind}`;
    const vanished = new Map<string, BaselineEntry>();
    for (const [rel, e] of this.baseline) if (!scan.entries.has(rel)) vanished.set(key(e), e);
    const gone: string[] = [];
    for (const [rel, e] of scan.entries) {
      // Inside something just quarantined: it went with it.
      if (gone.some((p) => rel.startsWith(`${p}/`))) continue;
      const known = this.baseline.get(rel);
      if (known) {
        // Mounted read-only in the guest: only the host user can have changed it (git on the
        // host replaces .git/config by rename, say). Unmounted (a symlink): a new inode is new.
        if (known.mounted || key(known) === key(e)) continue;
        gone.push(rel);
        changes.push(await this.quarantine(e, 'replaced'));
        continue;
      }
      // The same inode under a new path moved with its parent (`mv sub sub2`), mount and all.
      const moved = vanished.get(key(e));
      if (moved) {
        this.baseline.delete(moved.rel);
        this.baseline.set(rel, { ...moved, rel });
        continue;
      }
      gone.push(rel);
      changes.push(await this.quarantine(e, 'created'));
    }
    for (const c of changes) {
      this.log.push(c);
      this.opts.onChange?.(c);
    }
    if (this.log.length > 1000) {
      this.logStart += this.log.length - 1000;
      this.log.splice(0, this.log.length - 1000);
    }
    return changes;
  }

  private async quarantine(e: ProtectedEntry, change: ProtectedChange['change']): Promise<ProtectedChange> {
    const { workspace, stateDir } = this.opts;
    const reason = this.protect.reason(e.rel) ?? `${e.rel} is protected`;
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const dest = join(stateDir, 'quarantine', `${stamp}-${++this.quarantineSeq}`, e.rel);
    const src = join(workspace, e.rel);
    try {
      mkdirSync(dirname(dest), { recursive: true, mode: 0o700 });
      try {
        await rename(src, dest);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
        await cp(src, dest, { recursive: true, verbatimSymlinks: true, errorOnExist: false });
        await rm(src, { recursive: true, force: true });
      }
      return { path: e.rel, change, action: 'quarantined', quarantinedTo: dest, reason };
    } catch (err) {
      // Still there: say so loudly; a later scan tries again.
      const still = await lstat(src).catch(() => null);
      if (!still) return { path: e.rel, change, action: 'quarantined', quarantinedTo: dest, reason };
      return { path: e.rel, change, action: 'quarantine-failed', reason, error: (err as Error).message };
    }
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    if (this.timer) clearTimeout(this.timer);
    if (this.periodic) clearInterval(this.periodic);
  }
}

/** One line for the agent and the terminal about a change the guard acted on. */
export function describeProtectedChange(c: ProtectedChange): string {
  if (c.action === 'quarantined')
    return `cowork-vm: ${c.path} was ${c.change} in the guest; it is protected (${c.reason}), so the host moved it out of the workspace to ${c.quarantinedTo}. Protected paths can only be changed by the user on the host; ask them.`;
  return `cowork-vm: ${c.path} was ${c.change} in the guest and is protected (${c.reason}), but moving it out failed (${c.error}); do not use it.`;
}
