import { CoworkError } from '../errors.js';
import { globToRegExp } from './glob.js';
import type { CommandAnalysis, SimpleCommand } from './shell-analysis.js';
import { basename, SYSTEM_BIN } from './wrappers.js';
import { GUEST_WORKSPACE, workspaceRelativePath, writeTargets } from './write-targets.js';

/**
 * Rules in Claude Code's shape:
 *   Bash            any shell command          Bash(git status)   exactly these words
 *   Bash(git push:*) words starting with these  Read(.env) / Write(.git/**) / Edit(src/**)  workspace paths
 *   write_file      a tool by name
 */
export type Rule =
  | { source: string; kind: 'bash'; words: string[] | null; prefix: boolean; path?: string }
  | { source: string; kind: 'path'; access: 'read' | 'write' | 'edit'; glob: string; re: RegExp }
  | { source: string; kind: 'tool'; tool: string };

const PATH_KINDS: Record<string, 'read' | 'write' | 'edit'> = { Read: 'read', Write: 'write', Edit: 'edit' };

export function parseRule(source: string): Rule {
  const m = /^\s*([A-Za-z_][A-Za-z0-9_-]*)\s*(?:\((.*)\))?\s*$/s.exec(source);
  if (!m)
    throw new CoworkError(
      'invalidArgument',
      `policy rule ${JSON.stringify(source)} is not a rule: use Bash(cmd), Bash(prefix:*), Read(glob), Write(glob), Edit(glob) or a tool name`,
    );
  const kind = m[1] as string;
  const body = m[2];
  if (kind === 'Bash') {
    if (body === undefined || body.trim() === '*' || body.trim() === ':*')
      return { source, kind: 'bash', words: null, prefix: true };
    const prefix = /:\*\s*$/.test(body);
    const words = body
      .replace(/:\*\s*$/, '')
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    if (words.length === 0)
      throw new CoworkError('invalidArgument', `policy rule ${JSON.stringify(source)} has no command words`);
    const path = words[0] as string;
    words[0] = basename(path);
    return path.includes('/')
      ? { source, kind: 'bash', words, prefix, path }
      : { source, kind: 'bash', words, prefix };
  }
  const access = PATH_KINDS[kind];
  if (access) {
    if (body === undefined || body.trim() === '')
      throw new CoworkError(
        'invalidArgument',
        `policy rule ${JSON.stringify(source)} needs a path glob, e.g. ${kind}(src/**)`,
      );
    return { source, kind: 'path', access, glob: body.trim(), re: globToRegExp(body.trim()) };
  }
  if (body !== undefined)
    throw new CoworkError(
      'invalidArgument',
      `policy rule ${JSON.stringify(source)}: only Bash, Read, Write and Edit take an argument; name other tools bare`,
    );
  return { source, kind: 'tool', tool: kind };
}

/** Does a Bash rule match this list of words (argv[0] already a basename)? Dynamic words never match a literal. */
function matchWords(
  rule: Extract<Rule, { kind: 'bash' }>,
  argv: { text: string; dynamic: boolean; glob: boolean }[],
  dynamicArgs: boolean,
): boolean {
  if (rule.words === null) return true;
  if (argv.length < rule.words.length) return false;
  for (const [i, w] of rule.words.entries()) {
    const a = argv[i];
    if (!a || a.dynamic || a.text !== w) return false;
  }
  if (rule.prefix) return true;
  return argv.length === rule.words.length && !dynamicArgs;
}

/** For deny/ask: match the command as written (wrappers included) or as it runs. */
export function ruleHitsCommand(rule: Rule, sc: SimpleCommand): boolean {
  if (rule.kind !== 'bash') return false;
  if (rule.words === null) return true;
  if (matchWords(rule, sc.argv, sc.dynamicArgs)) return true;
  const head = sc.words[0];
  if (!head) return false;
  const raw = [{ ...head, text: head.dynamic ? head.text : basename(head.text) }, ...sc.words.slice(1)];
  return matchWords(rule, raw, sc.dynamicArgs);
}

/**
 * For allow: the command as it runs must match, and nothing around it may change what runs
 * (no variable assignments: `PATH=… ls`, `LD_PRELOAD=… ls`, `GIT_SSH_COMMAND=… git fetch`).
 */
export function ruleCoversCommand(rule: Rule, sc: SimpleCommand): boolean {
  if (rule.kind !== 'bash') return false;
  if (sc.assigns.length > 0 || sc.name === '') return rule.words === null;
  if (rule.words !== null) {
    // `Bash(ls:*)` trusts the system's ls, not ./ls or /tmp/ls written by the agent.
    if (rule.path !== undefined ? sc.path !== rule.path : sc.path.includes('/') && !SYSTEM_BIN.test(sc.path))
      return false;
  }
  return matchWords(rule, sc.argv, sc.dynamicArgs);
}

export function ruleMatchesPath(rule: Rule, relative: string, access: 'read' | 'write' | 'edit'): boolean {
  if (rule.kind !== 'path') return false;
  const kindOk = rule.access === 'read' ? access === 'read' : access !== 'read';
  return kindOk && rule.re.test(relative);
}

export function ruleMatchesTool(rule: Rule, tool: string): boolean {
  return rule.kind === 'tool' && rule.tool === tool;
}

/** Commands whose arguments are never opened as files (test/[ only look at metadata). */
const NOT_FILE_ARGS = new Set(['echo', 'printf', 'basename', 'dirname', 'test', '[']);

/**
 * Best effort for shell commands: a Read(glob) deny/ask rule also catches a command that names a
 * matching file (`cat .env`, `cp .env x`, `< .env`); Write/Edit(glob) catch every write target
 * (redirections of any form, `tee`, `cp` destinations, `sed -i` …). Literal paths are resolved as
 * the guest does (cwd /workspace, `//workspace/x`, `./a/../x`); globs and expansions cannot be
 * placed, so in the agent and gateway contexts they ask (shell-coverage.ts). Symlinks and hard
 * links are the file tools' and the VM's concern: this is a tripwire, not the guarantee.
 */
export function shellPathHit(
  rule: Rule,
  a: CommandAnalysis,
  cwd = GUEST_WORKSPACE,
  caseInsensitive = false,
): string | undefined {
  if (rule.kind !== 'path') return undefined;
  const re = caseInsensitive ? new RegExp(rule.re.source, 'i') : rule.re;
  const hit = (text: string) => {
    const rel = workspaceRelativePath(text, cwd);
    return rel !== undefined && re.test(rel);
  };
  if (rule.access !== 'read') {
    for (const t of writeTargets(a))
      if (!t.word.dynamic && !t.word.glob && hit(t.word.text)) return `${t.how} writes ${t.word.text}`;
    return undefined;
  }
  for (const sc of a.commands) {
    if (NOT_FILE_ARGS.has(sc.name)) continue;
    for (const w of sc.argv.slice(1)) {
      if (w.dynamic || w.glob) continue;
      const t = w.text.startsWith('-')
        ? w.text.slice(w.text.indexOf('=') + 1 || w.text.length)
        : w.text.replace(/^(of|if)=/, '');
      if (t && hit(t)) return `\`${sc.text}\` names ${t}`;
      // a glued short option's value: `git diff -O.env`, `grep -f.env`
      const glued = /^-[A-Za-z]./.test(w.text) && !w.text.startsWith('--') ? w.text.slice(2) : '';
      if (glued && hit(glued)) return `\`${sc.text}\` names ${glued}`;
      // git's REV:PATH (`git show HEAD:.env`, `git cat-file -p :0:.env`) reads the file from the repository
      const revPath =
        sc.name === 'git' && w.text.includes(':') ? w.text.slice(w.text.lastIndexOf(':') + 1) : '';
      if (revPath && hit(revPath)) return `\`${sc.text}\` reads ${revPath} from the repository`;
    }
  }
  for (const r of a.redirections) {
    if ((r.op === '<' || r.op === '<>') && !r.target.dynamic && hit(r.target.text))
      return `the redirection ${r.op} ${r.target.text}`;
  }
  return undefined;
}
