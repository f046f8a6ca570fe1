import type { ShellParser, ShNode } from './shell-parser.js';
import { SHELLS, shellDashC } from './shell-vocab.js';
import { resolveWord, type ShellWord } from './words.js';
import { unwrap } from './wrappers.js';

/**
 * Commands hidden where the analysis would not otherwise look: in a runner's arguments, in
 * strings bash evaluates as code, behind a variable, in text echoed into a shell. Best effort,
 * for the built-in denies and deny rules; everything found here is marked as a guess, and the
 * constructs themselves are outside the known subset (or need their own allow rule), so none of
 * it can make a command line allowed. Pure: the analyser analyses what these return.
 */
export type HiddenCommand = { line: string } | { words: ShellWord[] };

/** Syntax whose strings bash evaluates (arithmetic, tests, declarations). */
export const EVAL_CONTEXTS = new Set(['TestClause', 'ArithmCmd', 'ArithmExp', 'LetClause', 'DeclClause']);
/** Builtins that take variable names or arithmetic (their subscripts run commands). */
export const EVAL_BUILTINS = new Set([
  'test',
  '[',
  'printf',
  'read',
  'mapfile',
  'readarray',
  'unset',
  'let',
  'declare',
  'typeset',
  'local',
  'export',
  'readonly',
  'wait',
  'getopts',
  'kill',
  'shift',
  'return',
  'exit',
  'ulimit',
]);
/** `$x` / `${x}`: no operator, no subscript. */
export function isPlainParam(p: ShNode): boolean {
  return !p.Exp && !p.Repl && !p.Slice && !p.Index && !p.Length && !p.Excl && !p.Width && !p.Names;
}

const literal = (text: string): ShellWord => ({ text, dynamic: false, glob: false, params: [] });

/**
 * Runners (strace, chroot, flock, busybox, script -c, su -c …) run a command found somewhere in
 * their arguments, with option tables too many to model: every literal word that could start the
 * command is tried as one, and a word that looks like a command line is parsed as one.
 */
export function runnerCandidates(argv: ShellWord[]): HiddenCommand[] {
  const args = argv.slice(1);
  const out: HiddenCommand[] = [];
  for (let i = 0; i < args.length && out.length < 12; i++) {
    const w = args[i] as ShellWord;
    if (w.dynamic || w.text.startsWith('-') || w.text === '') continue;
    out.push(/[\s;&|<>()`$]/.test(w.text) ? { line: w.text } : { words: args.slice(i) });
  }
  return out;
}

/**
 * Strings bash evaluates as code although they look like data: array subscripts in arithmetic
 * (`[[ 'a[$(cmd)]' -eq 1 ]]`, `test -v 'a[$(cmd)]'`, `printf -v`, `read`, `declare -i`, `let`),
 * prompt expansion (`x='$(cmd)'; echo ${x@P}`). Every literal under `node` that contains `$(` or
 * a backtick, as a command line (subscript brackets become blanks: `a[$(cmd)]` → `a $(cmd)`).
 */
export function codeStrings(parser: ShellParser, node: ShNode): string[] {
  const out = new Set<string>();
  parser.walk(node, (n, t) => {
    if (t !== 'Lit' && t !== 'SglQuoted') return true;
    const v = String(n.Value ?? '');
    if (/\$\(|`/.test(v)) out.add(v.replace(/[[\]]/g, ' '));
    return true;
  });
  return [...out];
}

/**
 * `x=sudo; $x id`: a command name held in a variable assigned exactly once, to a literal, in the
 * same line, tried with that value.
 */
export function constantHeads(parser: ShellParser, file: ShNode): ShellWord[][] {
  const values = new Map<string, string | null>();
  const calls: ShNode[] = [];
  parser.walk(file, (n, t) => {
    if (t === 'Assign') {
      const name = String((n.Name as ShNode | null)?.Value ?? '');
      const w = n.Value ? resolveWord(parser, n.Value as ShNode) : undefined;
      values.set(name, values.has(name) || !w || w.dynamic ? null : w.text);
    } else if (t === 'CallExpr') calls.push(n);
    return true;
  });
  if (values.size === 0) return [];
  const out: ShellWord[][] = [];
  for (const c of calls) {
    const words = ((c.Args as ShNode[]) ?? []).map((w) => resolveWord(parser, w));
    const head = words[0];
    const name = head?.params.length === 1 && head.text === `$${head.params[0]}` ? head.params[0] : undefined;
    const value = name ? values.get(name) : undefined;
    if (value)
      out.push([
        ...value
          .split(/[ \t]+/)
          .filter(Boolean)
          .map(literal),
        ...words.slice(1),
      ]);
  }
  return out;
}

/** `echo 'rm -rf /' | bash`: the literal script a pipe feeds into a shell, if any. */
export function echoedScript(parser: ShellParser, pipe: ShNode): string | undefined {
  const call = (stmt: ShNode | null): ShellWord[] | undefined => {
    const c = stmt?.Cmd as ShNode | null;
    return c && parser.type(c) === 'CallExpr'
      ? ((c.Args as ShNode[]) ?? []).map((w) => resolveWord(parser, w))
      : undefined;
  };
  const left = call(pipe.X as ShNode);
  const right = call(pipe.Y as ShNode);
  if (!left || !right || left.some((w) => w.dynamic)) return undefined;
  const shell = unwrap(right).argv;
  if (!SHELLS.has(shell[0]?.text ?? '') || shellDashC(shell.slice(1)) !== undefined) return undefined;
  const [head, ...args] = left;
  if (head?.text === 'echo')
    return args
      .filter((w) => !/^-[neE]+$/.test(w.text))
      .map((w) => w.text)
      .join(' ');
  if (head?.text === 'printf' && args[0] && !args[0].text.includes('%'))
    return args[0].text.replace(/\\n/g, '\n');
  return undefined;
}
