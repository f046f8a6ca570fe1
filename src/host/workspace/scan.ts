import type { Dirent, Stats } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ProtectedPaths } from './protected.js';

/** One protected entry found in the workspace: the top-most path that is protected. */
export interface ProtectedEntry {
  /** Workspace-relative, '/'-separated. */
  rel: string;
  kind: 'file' | 'dir' | 'symlink' | 'other';
  dev: number;
  ino: number;
  /** A `.git` directory (pinned, and scanned inside for its protected parts). */
  gitDir: boolean;
}

export interface ScanResult {
  entries: Map<string, ProtectedEntry>;
  /** Directory entries visited (a measure of what a full scan costs). */
  visited: number;
  /** The cap was reached: deeper parts of the tree were not scanned. */
  capped: boolean;
}

/** Inside a `.git` directory these hold data, not anything git runs: never descended. */
const GIT_DATA_DIRS = new Set(['objects', 'lfs', 'refs', 'logs']);

function kindOf(st: Stats | Dirent): ProtectedEntry['kind'] {
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isDirectory()) return 'dir';
  if (st.isFile()) return 'file';
  return 'other';
}

/**
 * Walks `root/start` (never following symlinks) and returns every protected entry: the top-most
 * protected path of each subtree (`.envrc`, `.vscode`, `.git/config`, `.git/hooks`), plus every
 * `.git` directory, inside which the walk goes on to find its own protected parts (and those of
 * `.git/modules/*`). `.git/objects` and the like are never walked.
 */
export async function scanProtected(
  root: string,
  protect: ProtectedPaths,
  opts: { start?: string; maxEntries?: number } = {},
): Promise<ScanResult> {
  const entries = new Map<string, ProtectedEntry>();
  const max = opts.maxEntries ?? 200_000;
  let visited = 0;
  let capped = false;
  const fold = (s: string) => (protect.caseInsensitive ? s.toLowerCase() : s);

  const visit = async (rel: string, st: Stats | Dirent, inGit: boolean): Promise<void> => {
    const name = rel.slice(rel.lastIndexOf('/') + 1);
    const isGitDir = fold(name) === '.git' && st.isDirectory();
    const protectedHere = protect.isProtected(rel);
    if (protectedHere && !isGitDir) {
      const s = 'ino' in st ? st : await lstat(join(root, rel)).catch(() => null);
      if (s) entries.set(rel, { rel, kind: kindOf(s), dev: s.dev, ino: s.ino, gitDir: false });
      return; // the whole subtree is protected with it
    }
    if (isGitDir) {
      const s = 'ino' in st ? st : await lstat(join(root, rel)).catch(() => null);
      if (!s) return;
      entries.set(rel, { rel, kind: 'dir', dev: s.dev, ino: s.ino, gitDir: true });
    }
    if (!st.isDirectory()) return;
    if (inGit && GIT_DATA_DIRS.has(name)) return;
    await walkDir(rel, inGit || isGitDir);
  };

  const walkDir = async (rel: string, inGit: boolean): Promise<void> => {
    let list: Dirent[];
    try {
      list = await readdir(rel === '' ? root : join(root, rel), { withFileTypes: true });
    } catch {
      return; // vanished or unreadable: nothing the host would run from there either
    }
    for (const d of list) {
      if (visited >= max) {
        capped = true;
        return;
      }
      visited++;
      await visit(rel === '' ? d.name : `${rel}/${d.name}`, d, inGit);
    }
  };

  const start = opts.start ?? '';
  if (start === '') await walkDir('', false);
  else {
    const st = await lstat(join(root, start)).catch(() => null);
    if (st)
      await visit(
        start,
        st,
        start.split('/').some((c) => fold(c) === '.git'),
      );
  }
  return { entries, visited, capped };
}
