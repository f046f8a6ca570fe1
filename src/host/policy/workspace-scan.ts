import { type Dirent, lstatSync, readdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import type { PathCheck } from './path-guard.js';

/**
 * Bounded walks of the HOST copy of the workspace for the tool policy: lstat/readdir only, never
 * following symbolic links, never reading content. They see what the guest sees at /workspace
 * (the same share), except for changes racing the walk.
 */

/**
 * Walks `root` depth-first without following symbolic links, calling `visit` with each entry's
 * path relative to `root`; a directory is entered when `visit` returns true for it. Returns
 * false when it stopped early: more than `limit` entries, or a directory it could not read.
 */
function walkBounded(root: string, limit: number, visit: (sub: string, e: Dirent) => boolean): boolean {
  const dirs = [''];
  let seen = 0;
  while (dirs.length > 0) {
    const dir = dirs.pop() as string;
    let entries: Dirent[];
    try {
      entries = readdirSync(join(root, dir), { withFileTypes: true });
    } catch {
      return false;
    }
    for (const e of entries) {
      if (++seen > limit) return false;
      const sub = dir ? `${dir}/${e.name}` : e.name;
      if (visit(sub, e) && e.isDirectory()) dirs.push(sub);
    }
  }
  return true;
}

/**
 * Other names of a regular file inside the workspace that `interesting` selects (only those are
 * lstat'ed; directories are read without following symbolic links). `complete` is false when the
 * walk hit the limit or an unreadable directory.
 */
export function hardLinkNames(
  workspace: string,
  file: { dev: number; ino: number },
  self: string,
  interesting: (rel: string) => boolean,
  limit: number,
): { names: string[]; complete: boolean } {
  let root: string;
  try {
    root = realpathSync(workspace);
  } catch {
    return { names: [], complete: false };
  }
  const names: string[] = [];
  const complete = walkBounded(root, limit, (rel, e) => {
    if (e.isDirectory()) return true;
    if (e.isFile() && rel !== self && interesting(rel)) {
      try {
        const st = lstatSync(join(root, rel));
        if (st.ino === file.ino && st.dev === file.dev) names.push(rel);
      } catch {}
    }
    return false;
  });
  return { names, complete };
}

const SENTINEL = '\u0000';

/**
 * Entries below the existing folder `c` (direct children for 'entries', the whole tree for
 * 'tree'; symbolic links are not followed) that `hits` selects, relative to the folder; a folder
 * whose every descendant `hits` covers is returned whole as `name/`. Regular files in the scope
 * that are hard links to a selected file are returned too.
 */
export function withheldEntries(
  c: PathCheck,
  scope: 'entries' | 'tree',
  hits: (rel: string) => boolean,
  limit: number,
): string[] | 'incomplete' {
  const out: string[] = [];
  const denied = new Set<string>();
  const files: { rel: string; sub: string }[] = [];
  const complete = walkBounded(c.resolved, limit, (s, e) => {
    const rel = c.relative ? `${c.relative}/${s}` : s;
    // A folder whose every descendant a rule covers is withheld whole (erring towards withholding).
    if (e.isDirectory() && hits(`${rel}/${SENTINEL}`) && hits(`${rel}/${SENTINEL}/${SENTINEL}`)) {
      out.push(`${s}/`);
      return false;
    }
    if (hits(rel)) {
      out.push(s);
      if (e.isFile()) {
        try {
          const st = lstatSync(join(c.resolved, s));
          if (st.nlink > 1) denied.add(`${st.dev}:${st.ino}`);
        } catch {}
      }
    } else if (e.isFile()) files.push({ rel, sub: s });
    return scope === 'tree';
  });
  if (!complete) return 'incomplete';
  // Hard links (within the scope) to a withheld file are withheld too.
  if (denied.size > 0)
    for (const f of files) {
      try {
        const st = lstatSync(join(c.resolved, f.sub));
        if (st.nlink > 1 && denied.has(`${st.dev}:${st.ino}`)) out.push(f.sub);
      } catch {}
    }
  return out;
}
