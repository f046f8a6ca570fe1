import { lstatSync, readlinkSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { CoworkError } from '../errors.js';

/** The guest sees the workspace at this path; such absolute paths map onto the host workspace. */
export const GUEST_WORKSPACE = '/workspace';
const MAX_PATH_BYTES = 4096;
const MAX_COMPONENT_BYTES = 255;

export type PathAccess = 'read' | 'write' | 'edit';

export interface PathCheck {
  ok: boolean;
  /** Host path the request refers to (real path of the existing part + the rest). */
  resolved: string;
  /** Path relative to the workspace, with '/' separators ('' for the workspace itself). */
  relative: string;
  /** Why not, when !ok; for an ok path whose last part does not exist yet, a note to re-check. */
  reason?: string;
  exists: boolean;
  /** The final component does not exist yet: call assertStillInside() right before writing it. */
  recheckAtWrite: boolean;
}

function isInside(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

function fail(requested: string, reason: string): PathCheck {
  return {
    ok: false,
    resolved: '',
    relative: '',
    reason: `${JSON.stringify(requested)}: ${reason}`,
    exists: false,
    recheckAtWrite: false,
  };
}

function lstatOrNull(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}

/**
 * Decide whether `requested` (relative to the workspace, or absolute under /workspace or the
 * host workspace) stays inside the workspace: no `..` escape, no absolute path elsewhere, no
 * symlink at any depth resolving outside, no dangling symlink, no NUL, no over-long path.
 */
export function checkPath(workspace: string, requested: string, access: PathAccess): PathCheck {
  if (requested.includes('\0')) return fail(requested.replace(/\0/g, '\\0'), 'contains a NUL byte');
  if (Buffer.byteLength(requested) > MAX_PATH_BYTES)
    return fail(requested.slice(0, 64), `is longer than ${MAX_PATH_BYTES} bytes`);
  if (requested.split('/').some((c) => Buffer.byteLength(c) > MAX_COMPONENT_BYTES))
    return fail(requested.slice(0, 64), `has a path component longer than ${MAX_COMPONENT_BYTES} bytes`);
  let realWs: string;
  try {
    realWs = realpathSync(workspace);
  } catch {
    return fail(requested, `the workspace ${workspace} does not exist`);
  }
  const wsAbs = resolve(workspace);
  // The part of the request below the workspace root, still unresolved.
  let rest: string;
  const under = (root: string) => requested === root || requested.startsWith(`${root}/`);
  if (under(GUEST_WORKSPACE)) rest = requested.slice(GUEST_WORKSPACE.length);
  else if (isAbsolute(requested)) {
    if (under(wsAbs)) rest = requested.slice(wsAbs.length);
    else if (under(realWs)) rest = requested.slice(realWs.length);
    else
      return fail(
        requested,
        `is an absolute path outside the workspace (use a path relative to it, or under ${GUEST_WORKSPACE})`,
      );
  } else rest = requested;

  // Walk component by component like the kernel does: `cur` is always a real path, so `..`
  // after a symlink goes to the link target's parent, exactly as open(2) would.
  const parts = rest.split('/').filter((c) => c !== '' && c !== '.');
  let cur = realWs;
  for (const [i, part] of parts.entries()) {
    if (part === '..') {
      cur = dirname(cur);
      if (!isInside(realWs, cur)) return fail(requested, 'leaves the workspace through ".."');
      continue;
    }
    const next = join(cur, part);
    const st = lstatOrNull(next);
    if (!st) {
      const remaining = parts.slice(i + 1);
      if (remaining.includes('..')) return fail(requested, 'uses ".." below a path that does not exist');
      const resolvedPath = join(next, ...remaining);
      return {
        ok: true,
        resolved: resolvedPath,
        relative: relative(realWs, resolvedPath).split(sep).join('/'),
        exists: false,
        recheckAtWrite: access !== 'read',
        reason:
          access !== 'read'
            ? 'does not exist yet: re-check with assertStillInside() right before writing'
            : undefined,
      };
    }
    if (st.isSymbolicLink()) {
      let real: string;
      try {
        real = realpathSync(next);
      } catch {
        let to = '?';
        try {
          to = readlinkSync(next);
        } catch {}
        return fail(requested, `${relative(realWs, next)} is a dangling symbolic link (to ${to})`);
      }
      if (!isInside(realWs, real))
        return fail(
          requested,
          `${relative(realWs, next)} is a symbolic link that points outside the workspace (to ${real})`,
        );
      cur = real;
    } else cur = next;
  }
  return {
    ok: true,
    resolved: cur,
    relative: relative(realWs, cur).split(sep).join('/'),
    exists: true,
    recheckAtWrite: false,
  };
}

/**
 * Re-check right before writing (a symlink may have appeared since checkPath, e.g. created in
 * the guest). Throws CoworkError('denied') with the reason; returns the fresh check otherwise.
 * Callers should also open with O_NOFOLLOW where they can.
 */
export function assertStillInside(
  workspace: string,
  requested: string,
  access: PathAccess = 'write',
): PathCheck {
  const c = checkPath(workspace, requested, access);
  if (!c.ok) throw new CoworkError('denied', `path ${c.reason}; the file tool refuses to touch it`);
  // The parent of a new file must itself still be a real directory inside the workspace.
  if (!c.exists) {
    const parent = checkPath(workspace, dirname(c.resolved), 'read');
    if (!parent.ok)
      throw new CoworkError('denied', `path ${parent.reason}; the file tool refuses to touch it`);
  }
  return c;
}
