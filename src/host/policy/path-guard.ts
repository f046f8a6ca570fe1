import { lstatSync, readlinkSync, realpathSync } from 'node:fs';
import { join, posix, resolve } from 'node:path';
import { CoworkError } from '../errors.js';
import { foldsCase } from '../workspace/from-config.js';

/**
 * The path guard judges the GUEST's view of a path. The file tools run over SFTP inside the VM,
 * where the workspace is mounted at /workspace and nothing of the host exists, so:
 * - a path is workspace-relative, or absolute under /workspace; any other absolute path —
 *   including the host's own path of the workspace — names a different file in the guest and
 *   is refused;
 * - symbolic links are read from the host copy of the workspace (lstat/readlink, never the
 *   host's realpath) and interpreted as the guest kernel would: an absolute target is a guest
 *   path (only /workspace/… is inside), a relative one is taken from the link's guest directory.
 */
export const GUEST_WORKSPACE = '/workspace';
const MAX_PATH_BYTES = 4096;
const MAX_COMPONENT_BYTES = 255;
/** Linux's MAXSYMLINKS: more links than this in one resolution is ELOOP in the guest too. */
const MAX_LINKS = 40;

export type PathAccess = 'read' | 'write' | 'edit';

export interface PathGuardOptions {
  /** The host filesystem folds case; default: detected from the workspace (see hostFoldsCase). */
  caseInsensitive?: boolean;
}

export interface PathCheck {
  ok: boolean;
  /** Host path of the file the guest would touch (host copy of the workspace + resolved path). */
  resolved: string;
  /** Resolved path relative to the workspace, with '/' separators ('' for the workspace itself). */
  relative: string;
  /** Why not, when !ok; for an ok path whose last part does not exist yet, a note to re-check. */
  reason?: string;
  exists: boolean;
  /** The final component does not exist yet: call assertStillInside() right before writing it. */
  recheckAtWrite: boolean;
  /**
   * Every workspace-relative spelling the request went through: as written, through each
   * symbolic link met, and resolved. Deny and ask rules match if any spelling matches.
   */
  spellings: string[];
  /** An existing regular file's identity, for the hard-link check. */
  file?: { dev: number; ino: number; nlink: number };
  /** The resolved path exists and is a directory. */
  directory?: boolean;
}

function fail(requested: string, reason: string): PathCheck {
  return {
    ok: false,
    resolved: '',
    relative: '',
    reason: `${JSON.stringify(requested)}: ${reason}`,
    exists: false,
    recheckAtWrite: false,
    spellings: [],
  };
}

function lstatOrNull(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}

/** Does the filesystem holding the workspace fold case? One probe for the whole host side. */
export const hostFoldsCase = foldsCase;

const norm = (parts: string[]): string | undefined => {
  const n = posix.normalize(parts.join('/') || '.');
  if (n === '..' || n.startsWith('../') || n.startsWith('/')) return undefined;
  return n === '.' ? '' : n.replace(/\/$/, '');
};

interface Item {
  name: string;
  /** Workspace-relative path of the symbolic link whose target this part came from. */
  fromLink?: string;
}

/**
 * Decide whether `requested` (workspace-relative, or absolute under /workspace) names a path
 * inside the workspace as the guest sees it: no `..` escape, no absolute path elsewhere, no
 * symbolic link at any depth whose guest meaning leaves /workspace, no dangling link, no link
 * loop, no NUL, no over-long path.
 */
export function checkPath(
  workspace: string,
  requested: string,
  access: PathAccess,
  _opts: PathGuardOptions = {},
): PathCheck {
  if (requested.includes('\0')) return fail(requested.replace(/\0/g, '\\0'), 'contains a NUL byte');
  if (Buffer.byteLength(requested) > MAX_PATH_BYTES)
    return fail(requested.slice(0, 64), `is longer than ${MAX_PATH_BYTES} bytes`);
  if (requested.split('/').some((c) => Buffer.byteLength(c) > MAX_COMPONENT_BYTES))
    return fail(requested.slice(0, 64), `has a path component longer than ${MAX_COMPONENT_BYTES} bytes`);
  let realWs: string;
  try {
    // The workspace root itself is a host path (the share's source): resolving it on the host is right.
    realWs = realpathSync(workspace);
  } catch {
    return fail(requested, `the workspace ${workspace} does not exist`);
  }
  let rest: string;
  if (requested.startsWith('/')) {
    // Linux treats `//workspace//x` as `/workspace/x`.
    const p = requested.replace(/\/+/g, '/');
    if (p === GUEST_WORKSPACE || p.startsWith(`${GUEST_WORKSPACE}/`)) rest = p.slice(GUEST_WORKSPACE.length);
    else {
      const wsAbs = resolve(workspace);
      const hostPath = [wsAbs, realWs].some((r) => p === r || p.startsWith(`${r}/`));
      return fail(
        requested,
        hostPath
          ? `is the host's path of the workspace; the file tools run in the VM, where the workspace is ${GUEST_WORKSPACE} — use a workspace-relative path or ${GUEST_WORKSPACE}/…`
          : `is an absolute path outside ${GUEST_WORKSPACE} (use a workspace-relative path or ${GUEST_WORKSPACE}/…)`,
      );
    }
  } else rest = requested;

  const original = rest.split('/').filter((c) => c !== '' && c !== '.');
  const spellings = new Set<string>();
  const lexical = norm(original);
  if (lexical !== undefined) spellings.add(lexical);
  const queue: Item[] = original.map((name) => ({ name }));
  const stack: string[] = [];
  let hops = 0;
  while (queue.length > 0) {
    const item = queue.shift() as Item;
    const where = item.fromLink
      ? `${item.fromLink} is a symbolic link that points outside the workspace`
      : '';
    if (item.name === '..') {
      if (stack.length === 0)
        return fail(requested, where ? `${where} (through "..")` : 'leaves the workspace through ".."');
      stack.pop();
      continue;
    }
    const rel = [...stack, item.name].join('/');
    const host = join(realWs, ...stack, item.name);
    const st = lstatOrNull(host);
    if (!st) {
      if (item.fromLink || queue.some((q) => q.fromLink))
        return fail(requested, `${item.fromLink ?? rel} is a dangling symbolic link (in the VM)`);
      if (queue.some((q) => q.name === '..'))
        return fail(requested, 'uses ".." below a path that does not exist');
      const relative = [rel, ...queue.map((q) => q.name)].join('/');
      spellings.add(relative);
      return {
        ok: true,
        resolved: join(realWs, relative),
        relative,
        exists: false,
        recheckAtWrite: access !== 'read',
        reason:
          access !== 'read'
            ? 'does not exist yet: re-check with assertStillInside() right before writing'
            : undefined,
        spellings: [...spellings],
      };
    }
    if (!st.isSymbolicLink()) {
      stack.push(item.name);
      continue;
    }
    if (++hops > MAX_LINKS)
      return fail(requested, `meets more than ${MAX_LINKS} symbolic links (a loop, at ${rel})`);
    const through = norm([rel, ...queue.map((q) => q.name)]);
    if (through !== undefined) spellings.add(through);
    let target: string;
    try {
      target = readlinkSync(host);
    } catch {
      return fail(requested, `${rel} is a symbolic link that could not be read`);
    }
    if (target === '') return fail(requested, `${rel} is a dangling symbolic link (empty target)`);
    let parts: string[];
    if (target.startsWith('/')) {
      const t = target.replace(/\/+/g, '/');
      if (t !== GUEST_WORKSPACE && !t.startsWith(`${GUEST_WORKSPACE}/`))
        return fail(
          requested,
          `${rel} is a symbolic link that points outside the workspace (to ${target}; in the VM an absolute link target is a guest path, and only ${GUEST_WORKSPACE}/… is the workspace)`,
        );
      stack.length = 0;
      parts = t.slice(GUEST_WORKSPACE.length).split('/');
    } else parts = target.split('/');
    queue.unshift(...parts.filter((c) => c !== '' && c !== '.').map((name) => ({ name, fromLink: rel })));
  }
  const relative = stack.join('/');
  spellings.add(relative);
  const host = join(realWs, ...stack);
  const st = lstatOrNull(host);
  const check: PathCheck = {
    ok: true,
    resolved: host,
    relative,
    exists: true,
    recheckAtWrite: false,
    spellings: [...spellings],
    directory: st?.isDirectory() ?? false,
  };
  if (st?.isFile()) check.file = { dev: st.dev, ino: st.ino, nlink: st.nlink };
  return check;
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
  opts: PathGuardOptions = {},
): PathCheck {
  const c = checkPath(workspace, requested, access, opts);
  if (!c.ok) throw new CoworkError('denied', `path ${c.reason}; the file tool refuses to touch it`);
  // The parent of a new file must itself still be a real directory inside the workspace.
  if (!c.exists) {
    const parent = checkPath(workspace, posix.dirname(c.relative), 'read', opts);
    if (!parent.ok)
      throw new CoworkError('denied', `path ${parent.reason}; the file tool refuses to touch it`);
  }
  return c;
}
