import { statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { WorkspaceConfig } from '../config/schema.js';
import { ProtectedPaths } from './protected.js';

/**
 * Whether the filesystem holding `dir` folds case: the same folder reached with its name's
 * case swapped is the same inode. Without letters in the name to swap, go by the platform's
 * default (APFS and NTFS fold case; Linux filesystems do not).
 */
export function foldsCase(dir: string): boolean {
  const name = basename(dir);
  const swapped = [...name].map((c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase())).join('');
  if (swapped === name) return process.platform === 'darwin' || process.platform === 'win32';
  try {
    const a = statSync(dir);
    const b = statSync(join(dirname(dir), swapped));
    return a.ino === b.ino && a.dev === b.dev;
  } catch {
    return false;
  }
}

/** The workspace's protected paths as configured (`[workspace]`), case folding resolved. */
export function protectedPathsFor(workspace: string, cfg: WorkspaceConfig): ProtectedPaths {
  const caseInsensitive = cfg.caseInsensitive === 'auto' ? foldsCase(workspace) : cfg.caseInsensitive;
  return new ProtectedPaths({ patterns: cfg.protect, caseInsensitive });
}
