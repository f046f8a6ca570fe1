import { REDIR_OPS, type ShellParser, type ShNode } from './shell-parser.js';
import { resolveWord } from './words.js';

/**
 * The subset of bash whose meaning the analyser knows completely. Only a command line inside it
 * can be auto-approved (agent and gateway contexts); anything else is at least ask, because bash
 * may evaluate code or change state where the analyser sees data.
 *
 * Inside: simple commands of literal words (unquoted, single-quoted, $'…', double-quoted without
 * expansions), `&&`, `||`, `;`, `|`, `|&`, `!`, and redirections whose operator and target are
 * literal (their targets are judged by the engine), and the grouping constructs below. Outside, with the reason: every expansion
 * (parameter — `$_`, `${x:=…}`, `${x@P}`, `${!x}` —, command, process, arithmetic, brace, tilde),
 * assignments, `[[ ]]` and `(( ))` (arithmetic evaluates array subscripts, which run commands),
 * compound commands, functions, `declare`/`let`, background jobs, coprocesses, named file
 * descriptors, here-documents whose delimiter spans a backslash-newline (bash and the parser
 * disagree where they end).
 */

/**
 * Grouping and control flow (`( )`, `{ }`, if, while/until, case, the time keyword) only order
 * commands that are judged one by one; `for` is outside because it assigns a variable.
 */
const INSIDE = new Set([
  'File',
  'Stmt',
  'CallExpr',
  'BinaryCmd',
  'Word',
  'Lit',
  'SglQuoted',
  'DblQuoted',
  'Redirect',
  'Subshell',
  'Block',
  'IfClause',
  'WhileClause',
  'CaseClause',
  'CaseItem',
  'TimeClause',
]);

const CONSTRUCT: Record<string, string> = {
  ParamExp: 'a parameter expansion',
  CmdSubst: 'a command substitution',
  ProcSubst: 'a process substitution',
  ArithmExp: 'an arithmetic expansion (it evaluates array subscripts, which can run commands)',
  ArithmCmd: 'an arithmetic command (it evaluates array subscripts, which can run commands)',
  TestClause: 'a [[ ]] test (its arithmetic operators evaluate code)',
  FuncDecl: 'a function definition',
  DeclClause: 'a declare/local/export/readonly',
  LetClause: 'a let (arithmetic, which can run commands)',
  ExtGlob: 'an extended glob',
  BraceExp: 'a brace expansion',
  IfClause: 'an if statement',
  WhileClause: 'a loop',
  ForClause: 'a loop',
  CaseClause: 'a case statement',
  Block: 'a { } group',
  Subshell: 'a ( ) subshell',
  TimeClause: 'the time keyword',
  CoprocClause: 'a coprocess',
  TestDecl: 'a test declaration',
};

/** Reasons the command line is outside the known subset (empty = inside). */
export function subsetGaps(parser: ShellParser, file: ShNode, source: string): string[] {
  const gaps = new Set<string>();
  let heredoc = false;
  parser.walk(file, (node, type) => {
    if (!INSIDE.has(type)) {
      gaps.add(`the command uses ${CONSTRUCT[type] ?? `a ${type} construct`}`);
      return true;
    }
    if (type === 'Stmt') {
      if (node.Background) gaps.add('the command starts a background job');
      if (node.Coprocess) gaps.add('the command starts a coprocess');
    } else if (type === 'CallExpr') {
      if (((node.Assigns as ShNode[]) ?? []).length > 0) gaps.add('the command assigns variables');
      for (const w of (node.Args as ShNode[]) ?? []) wordGaps(parser, w, gaps);
    } else if (type === 'DblQuoted' && node.Dollar) gaps.add('the command uses a $"…" translated string');
    else if (type === 'Redirect') {
      const op = REDIR_OPS[node.Op as number] ?? '?';
      const n = node.N as ShNode | null;
      if (n && !/^[0-9]$/.test(String(n.Value ?? '')))
        gaps.add('the command names a file descriptor by variable');
      if (op === '<<' || op === '<<-') heredoc = true;
      else if (node.Word) wordGaps(parser, node.Word as ShNode, gaps);
    }
    return true;
  });
  if (heredoc && /\\\r?\n/.test(source))
    gaps.add('a here-document and a backslash-newline: bash and the parser may disagree where it ends');
  return [...gaps];
}

function wordGaps(parser: ShellParser, word: ShNode, gaps: Set<string>): void {
  const w = resolveWord(parser, word);
  const shown = w.text.replace(
    /[\x00-\x1f\x7f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
  if (w.dynamic) gaps.add(`the word \`${shown}\` is only known when it runs`);
  for (const [i, part] of ((word.Parts as ShNode[]) ?? []).entries()) {
    if (parser.type(part) !== 'Lit') continue;
    const v = String(part.Value ?? '');
    // tilde expansion: at the start of a word, and after = or : in words that look like assignments
    if ((i === 0 && v.startsWith('~')) || /[=:]~/.test(v))
      gaps.add(`the word \`${shown}\` starts with ~, which expands to a home directory`);
  }
}
