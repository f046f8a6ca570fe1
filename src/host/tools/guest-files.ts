import { posix } from 'node:path';
import { CoworkError } from '../errors.js';
import { assertStillInside } from '../policy/path-guard.js';
import type { DirEntry, ExecResult, FileStat, GuestSession } from '../ssh/types.js';
import { GUEST_WORKSPACE, guestPath, shellQuote } from './guest-path.js';

/** A workspace path a tool call touches (a resolved guest path: relative or /workspace/...). */
export interface ToolPath {
  path: string;
  access: 'read' | 'write' | 'edit';
  /** A listing ('entries') or a search ('tree') below the path; Read rules may withhold parts. */
  scope?: 'entries' | 'tree';
}

/** A search below a granted 'tree' path; every word is quoted when the command is built. */
export interface SearchSpec {
  path: string;
  pattern: string;
  glob?: string;
  ignore_case: boolean;
  max_results: number;
}

/**
 * Guest file I/O limited to the paths ONE decision allowed, with the access each was allowed
 * for: a read grant cannot write, a write grant cannot read, a path that was not decided
 * cannot be reached at all. Every call resolves its path the way the tool declared it, so
 * `a/../b` is `b`, and compares it exactly.
 */
export interface GuestFiles {
  /** What was decided, in the order the tool declared it. */
  readonly paths: readonly ToolPath[];
  /** Entries below a scoped path that Read rules withhold (relative to it; '/' ends a folder). */
  readonly withheld: readonly string[];
  stat(path: string): Promise<FileStat>;
  readFile(path: string, opts: { maxBytes: number }): Promise<Buffer>;
  /** Only for a path granted with scope 'entries'. */
  list(path: string): Promise<DirEntry[]>;
  /** Only below a path granted with scope 'tree'; prunes what is withheld before anything reads it. */
  search(spec: SearchSpec, opts: { timeoutMs: number; maxOutputBytes: number }): Promise<ExecResult>;
  /** Creates missing parent folders, then writes; only for a path granted 'write' or 'edit'. */
  writeFile(path: string, data: string | Buffer): Promise<void>;
}

/** The loop's side of a grant: it revokes the grant when the tool call ends. */
export interface GuestFileGrant extends GuestFiles {
  revoke(): void;
}

type Need = 'read' | 'write' | 'list' | 'search';

const allows = (p: ToolPath, need: Need): boolean => {
  switch (need) {
    case 'read':
      return p.access === 'read' || p.access === 'edit';
    case 'write':
      return p.access === 'write' || p.access === 'edit';
    case 'list':
      return p.access === 'read' && p.scope === 'entries';
    case 'search':
      return p.access === 'read' && p.scope === 'tree';
  }
};

/** find's -path patterns are globs: match these names literally. */
function findLiteral(path: string): string {
  return path.replace(/[\\*?[]/g, '\\$&');
}

/**
 * The search run in the guest; every model-supplied word is quoted. find lists regular files
 * (not following symbolic links below the root, like grep -r) and prunes what the Read rules
 * withhold, so a denied file is never read, and neither the matches nor their count can reveal
 * what it holds; grep -Z ends each file name with a NUL so the host can parse names safely.
 */
export function searchCommand(input: SearchSpec, withheld: readonly string[] = []): string {
  const root = guestPath(input.path);
  const find = ['find', '-H', shellQuote(root)];
  if (withheld.length > 0) {
    const tests = withheld.map((w) => `-path ${shellQuote(findLiteral(`${root}/${w.replace(/\/$/, '')}`))}`);
    find.push('\\(', tests.join(' -o '), '\\)', '-prune', '-o');
  }
  find.push('-type', 'f');
  if (input.glob) find.push('-name', shellQuote(input.glob));
  find.push('-print0');
  const grep = ['xargs', '-0', '-r', 'grep', '-nIEHZ', '--color=never'];
  if (input.ignore_case) grep.push('-i');
  grep.push('-e', shellQuote(input.pattern), '--');
  return `${find.join(' ')} | ${grep.join(' ')} | head -n ${Math.floor(input.max_results) + 1}`;
}

/** The folder-creation command for a write: the folder is one quoted word, whatever it holds. */
export function mkdirCommand(dir: string): string {
  return `mkdir -p -- ${shellQuote(dir)}`;
}

export interface GuestFileScope {
  /** Host path of the workspace: writes re-run the path guard on it right before they happen. */
  workspace: string;
  paths: readonly ToolPath[];
  withheld?: readonly string[];
  /** Passed to every guest command the grant runs. */
  signal?: AbortSignal;
}

/**
 * Guest file access for one decided tool call, over the session that only the controller (or a
 * test standing in for it) holds. The session itself never leaves this closure.
 */
export function scopeGuestFiles(session: GuestSession, scope: GuestFileScope): GuestFileGrant {
  const granted = scope.paths.map((p) => ({ ...p, path: guestPath(p.path) }));
  const withheld = [...(scope.withheld ?? [])];
  let revoked = false;

  const check = (path: string, need: Need): string => {
    if (revoked)
      throw new CoworkError('denied', 'this tool call has ended; its guest access was revoked with it');
    const abs = guestPath(path);
    if (!granted.some((p) => p.path === abs && allows(p, need))) {
      const what = need === 'write' ? 'write' : need === 'read' ? 'read' : need;
      throw new CoworkError(
        'denied',
        `${abs} was not decided for ${what} in this tool call — declare it in the tool's claim so the policy judges it`,
      );
    }
    return abs;
  };

  return {
    paths: granted.map((p) => ({ ...p })),
    withheld,
    async stat(path) {
      return session.stat(check(path, 'read'));
    },
    async readFile(path, opts) {
      return session.readFile(check(path, 'read'), { maxBytes: opts.maxBytes });
    },
    async list(path) {
      return session.list(check(path, 'list'));
    },
    async search(spec, opts) {
      check(spec.path, 'search');
      return session.exec(searchCommand(spec, withheld), {
        cwd: GUEST_WORKSPACE,
        timeoutMs: opts.timeoutMs,
        maxOutputBytes: opts.maxOutputBytes,
        signal: scope.signal,
      });
    },
    async writeFile(path, data) {
      const abs = check(path, 'write');
      // Right before writing, the path guard runs again on the host copy of the workspace: a
      // symbolic link swapped in since the decision (by something running in the guest) is refused.
      assertStillInside(scope.workspace, abs, 'write');
      const mk = await session.exec(mkdirCommand(posix.dirname(abs)), {
        timeoutMs: 30_000,
        signal: scope.signal,
      });
      if (mk.exitCode !== 0)
        throw new CoworkError('invalidState', mk.stderr.trim() || `mkdir exited with ${mk.exitCode}`);
      await session.writeFile(abs, data);
    },
    revoke() {
      revoked = true;
    },
  };
}
