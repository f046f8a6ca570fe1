import { lstatSync, readdirSync, realpathSync } from 'node:fs';
import { dirname, basename as hostBasename, join } from 'node:path';
import type { WorkspaceConfig } from '../config/schema.js';
import { ProtectedPaths } from './protected.js';

const foldCache = new Map<string, boolean>();

function swapCase(s: string): string {
  return [...s].map((c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase())).join('');
}

/**
 * Does the filesystem holding the workspace fold case (macOS APFS/HFS+ default, Windows)?
 * Probe: lstat an existing name with its case swapped and compare (dev, ino) — entries of the
 * workspace first (that is the share's filesystem), then the workspace's own path. Cached.
 */
export function foldsCase(realWs: string): boolean {
  const cached = foldCache.get(realWs);
  if (cached !== undefined) return cached;
  const candidates: [string, string][] = [];
  try {
    for (const name of readdirSync(realWs).slice(0, 50))
      if (swapCase(name) !== name) candidates.push([join(realWs, name), join(realWs, swapCase(name))]);
  } catch {}
  const base = hostBasename(realWs);
  if (swapCase(base) !== base) candidates.push([realWs, join(dirname(realWs), swapCase(base))]);
  let folds = process.platform === 'darwin' || process.platform === 'win32';
  for (const [orig, swapped] of candidates) {
    const a = lstatOrNull(orig);
    if (!a) continue;
    const b = lstatOrNull(swapped);
    folds = b !== null && b.ino === a.ino && b.dev === a.dev;
    break;
  }
  foldCache.set(realWs, folds);
  return folds;
}

/** The workspace's protected paths as configured (`[workspace]`), case folding resolved. */
export function protectedPathsFor(workspace: string, cfg: WorkspaceConfig): ProtectedPaths {
  const caseInsensitive =
    cfg.caseInsensitive === 'auto' ? foldsCase(realOrSelf(workspace)) : cfg.caseInsensitive;
  return new ProtectedPaths({ patterns: cfg.protect, caseInsensitive });
}

function realOrSelf(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

function lstatOrNull(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}
