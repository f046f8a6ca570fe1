import { posix } from 'node:path';
import { isWriteRedirect } from './dangerous.js';
import type { CommandAnalysis, SimpleCommand } from './shell-analysis.js';
import type { ShellWord } from './words.js';

/**
 * Where shell commands write, in the GUEST's namespace: the workspace is /workspace, a relative
 * path is resolved against the command's cwd (default /workspace), `//workspace/x` and
 * `./sub/../x` are normalised. Used for the protected-path deny and for Write/Edit rules.
 */

export const GUEST_WORKSPACE = '/workspace';

/** An absolute, normalised guest path for a literal word (undefined for `~…`, `-`, empty). */
export function guestAbsolute(text: string, cwd = GUEST_WORKSPACE): string | undefined {
  if (text === '' || text.startsWith('~')) return undefined;
  let t = posix.resolve(cwd, text);
  // the guest kernel's aliases of the cwd and the root (`/proc/self/cwd/.env` is `.env`)
  for (let prev = ''; prev !== t; ) {
    prev = t;
    t = posix.resolve(
      t
        .replace(/^\/proc\/(self|thread-self)\/cwd(?=\/|$)/, cwd)
        .replace(/^\/proc\/(self|thread-self|\d+)\/root(?=\/|$)/, '/') || '/',
    );
  }
  return t;
}

/**
 * Paths whose target the policy cannot know: another process's cwd, open descriptors,
 * `/dev/stdin`… (they may reopen a workspace file). The agent asks for them.
 */
export function isOpaquePath(text: string, cwd = GUEST_WORKSPACE): boolean {
  const abs = guestAbsolute(text, cwd);
  return (
    abs !== undefined &&
    /^\/(proc\/[^/]+\/(cwd|fd|root|map_files|fdinfo)|dev\/(fd|stdin|stdout|stderr)(\/|$))/.test(abs)
  );
}

/** The workspace-relative form ('.' for the root), or undefined when the path is outside /workspace. */
export function workspaceRelativePath(text: string, cwd = GUEST_WORKSPACE): string | undefined {
  const abs = guestAbsolute(text, cwd);
  if (abs === undefined) return undefined;
  if (abs === GUEST_WORKSPACE) return '.';
  return abs.startsWith(`${GUEST_WORKSPACE}/`) ? abs.slice(GUEST_WORKSPACE.length + 1) : undefined;
}

export interface WriteTarget {
  word: ShellWord;
  /** How the command writes it, for messages: "the redirection >&", "tee", "cp (destination)". */
  how: string;
}

function operands(args: ShellWord[]): { ops: ShellWord[]; opts: ShellWord[] } {
  const ops: ShellWord[] = [];
  const opts: ShellWord[] = [];
  let done = false;
  for (const w of args) {
    if (!done && w.text === '--') done = true;
    else if (!done && w.text.startsWith('-') && w.text !== '-') opts.push(w);
    else ops.push(w);
  }
  return { ops, opts };
}

/** `-t DIR`, `--target-directory=DIR`, `--target=DIR` (any abbreviation). */
function targetDirectory(args: ShellWord[]): ShellWord | undefined {
  for (const [i, w] of args.entries()) {
    if (w.text === '-t') return args[i + 1];
    if (w.text.startsWith('-t') && !w.text.startsWith('--')) return { ...w, text: w.text.slice(2) };
    const m = /^--t[a-z-]*=(.*)$/.exec(w.text);
    if (m && 'target-directory'.startsWith(w.text.slice(2, w.text.indexOf('='))))
      return { ...w, text: m[1] as string };
  }
  return undefined;
}

const ALL_OPERANDS = new Set([
  'patch',
  'tee',
  'touch',
  'truncate',
  'rm',
  'unlink',
  'shred',
  'mkdir',
  'rmdir',
  'mkfifo',
  'mknod',
]);
const AFTER_FIRST = new Set(['chmod', 'chown', 'chgrp', 'setfacl']);

/** Paths a simple command writes, as far as its arguments say (best effort, literal words). */
export function commandWriteTargets(sc: SimpleCommand): WriteTarget[] {
  const name = sc.name;
  const args = sc.argv.slice(1);
  const { ops, opts } = operands(args);
  const out: WriteTarget[] = [];
  const add = (w: ShellWord | undefined, how: string) => {
    if (w) out.push({ word: w, how });
  };
  if (ALL_OPERANDS.has(name)) for (const w of ops) add(w, name);
  else if (AFTER_FIRST.has(name)) for (const w of ops.slice(1)) add(w, name);
  else if (['cp', 'mv', 'ln', 'install', 'link', 'rsync', 'scp'].includes(name)) {
    const t = targetDirectory(args);
    if (t) add(t, `${name} (target directory)`);
    else add(ops[ops.length - 1], `${name} (destination)`);
    if (name === 'mv') for (const w of t ? ops : ops.slice(0, -1)) add(w, 'mv (source, removed)');
  } else if (name === 'sed' && opts.some((w) => /^(-[a-zA-Z]*i|--in)/.test(w.text)))
    for (const w of ops.slice(opts.some((o) => /^(-[a-zA-Z]*e|--e|-f|--f)/.test(o.text)) ? 0 : 1))
      add(w, 'sed -i');
  else if (name === 'dd')
    for (const w of args) if (w.text.startsWith('of=')) add({ ...w, text: w.text.slice(3) }, 'dd of=');
  for (const [i, w] of args.entries()) {
    const m = /^--(output|output-file|log-file)=(.*)$/.exec(w.text);
    if (m) add({ ...w, text: m[2] as string }, `${name} --${m[1]}`);
    if (name === 'sort' && w.text === '-o') add(args[i + 1], 'sort -o');
    else if (name === 'sort' && /^-[a-zA-Z]*o./.test(w.text))
      add({ ...w, text: w.text.slice(w.text.indexOf('o') + 1) }, 'sort -o');
    if (name === 'find' && /^-f(print0?|printf|ls)$/.test(w.text)) add(args[i + 1], `find ${w.text}`);
  }
  return out;
}

/** Every write target of an analysed command line: redirections (all forms) and known write arguments. */
const MEMO = new WeakMap<CommandAnalysis, WriteTarget[]>();

export function writeTargets(a: CommandAnalysis): WriteTarget[] {
  const memo = MEMO.get(a);
  if (memo) return memo;
  const out: WriteTarget[] = [];
  MEMO.set(a, out);
  for (const r of a.redirections)
    if (isWriteRedirect(r)) out.push({ word: r.target, how: `the redirection ${r.fd ?? ''}${r.op}` });
  for (const sc of a.commands) out.push(...commandWriteTargets(sc));
  return out;
}
