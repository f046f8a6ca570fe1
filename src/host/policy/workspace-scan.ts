import { type Dirent, lstatSync, readdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import type { PathCheck } from './path-guard.js';

/**
 * Bounded walks of the HOST copy of the workspace for the tool policy: lstat/readdir only, never
 * following symbolic links, never reading content. They see what the guest sees at /workspace
 * (the same share), except for changes racing the walk.
 */

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
  const dirs = [''];
  let seen = 0;
  while (dirs.length > 0) {
    const dir = dirs.pop() as string;
    let entries: Dirent[];
    try {
      entries = readdirSync(join(root, dir), { withFileTypes: true });
    } catch {
      return { names, complete: false };
    }
    for (const e of entries) {
      if (++seen > limit) return { names, complete: false };
      const rel = dir ? `${dir}/${e.name}` : e.name;
      if (e.isDirectory()) dirs.push(rel);
      else if (e.isFile() && rel !== self && interesting(rel)) {
        try {
          const st = lstatSync(join(root, rel));
          if (st.ino === file.ino && st.dev === file.dev) names.push(rel);
        } catch {}
      }
    }
  }
  return { names, complete: true };
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
  const dirs = [''];
  let seen = 0;
  while (dirs.length > 0) {
    const sub = dirs.pop() as string;
    let entries: Dirent[];
    try {
      entries = readdirSync(join(c.resolved, sub), { withFileTypes: true });
    } catch {
      return 'incomplete';
    }
    for (const e of entries) {
      if (++seen > limit) return 'incomplete';
      const s = sub ? `${sub}/${e.name}` : e.name;
      const rel = c.relative ? `${c.relative}/${s}` : s;
      // A folder whose every descendant a rule covers is withheld whole (erring towards withholding).
      if (e.isDirectory() && hits(`${rel}/${SENTINEL}`) && hits(`${rel}/${SENTINEL}/${SENTINEL}`)) {
        out.push(`${s}/`);
        continue;
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
      if (e.isDirectory() && scope === 'tree') dirs.push(s);
    }
  }
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
