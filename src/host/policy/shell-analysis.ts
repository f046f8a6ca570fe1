import {
  codeStrings,
  constantHeads,
  EVAL_BUILTINS,
  EVAL_CONTEXTS,
  echoedScript,
  type HiddenCommand,
  isPlainParam,
  runnerCandidates,
} from './shell-hidden.js';
import { BIN_OPS, REDIR_OPS, ShellParseError, type ShellParser, type ShNode } from './shell-parser.js';
import { forkBombFindings, pipelineFindings } from './shell-structure.js';
import { subsetGaps } from './shell-subset.js';
import type { CommandAnalysis, Finding, Redirection, SimpleCommand } from './shell-types.js';
import {
  DOWNLOADERS,
  INTERPRETERS,
  interpreterName,
  PLAIN_LIST,
  RESERVED,
  RUNNERS,
  SHELLS,
  shellDashC,
  skipWatchOptions,
} from './shell-vocab.js';
import { resolveWord, type ShellWord } from './words.js';
import { basename, type Unwrapped, unwrap, WRAPPERS } from './wrappers.js';

const MAX_DEPTH = 3;
const CR_GAP = 'the command contains a carriage return, which bash reads as part of a word';
const MAX_SOURCE = 64 * 1024;
function render(words: ShellWord[]): string {
  return words
    .map((w) => (/[\s'"]/.test(w.text) || w.text === '' ? JSON.stringify(w.text) : w.text))
    .join(' ');
}

/** The analyser: stateless apart from the parser; one per PolicyEngine. */
export class ShellAnalyzer {
  constructor(private readonly parser: ShellParser) {}

  /** Use the parser-free path for plain command lists (on by default; tests compare both). */
  fastPath = true;

  /**
   * Parser-free analysis for the commonest shape: plain words joined by `&&`, `||` or `;`. The
   * alphabet leaves bash nothing to interpret (no quotes, expansions, globs, tildes, braces,
   * comments, redirections, pipes or background), so splitting on blanks is exactly what bash
   * does. Anything else — or a reserved word or assignment in command position — goes to mvdan/sh.
   */
  #plainList(source: string, depth: number, a: CommandAnalysis): boolean {
    if (!PLAIN_LIST.test(source)) return false;
    const segments = source.split(/&&|\|\||;/);
    const lists: ShellWord[][] = [];
    for (const seg of segments) {
      const words = seg.split(/[ \t]+/).filter(Boolean);
      const head = words[0];
      if (head === undefined) {
        if (seg.trim() === '' && segments.length > 1) return false; // `a &&` or `;;`: let the parser judge
        continue;
      }
      if (RESERVED.has(head) || head.includes('=')) return false;
      lists.push(words.map((text) => ({ text, dynamic: false, glob: false, params: [] })));
    }
    for (const words of lists) this.#simple(words, [], depth, a);
    return true;
  }

  analyze(source: string): CommandAnalysis {
    const a: CommandAnalysis = { source, commands: [], redirections: [], findings: [], outside: [] };
    this.#analyzeInto(source, 0, a);
    return a;
  }

  #analyzeInto(source: string, depth: number, a: CommandAnalysis): void {
    if (depth > MAX_DEPTH) {
      a.findings.push({
        effect: 'ask',
        rule: 'analysis:depth',
        reason: `commands nested more than ${MAX_DEPTH} levels deep (sh -c / eval) are not analysed`,
      });
      return;
    }
    if (source.length > MAX_SOURCE) {
      a.findings.push({
        effect: 'ask',
        rule: 'analysis:size',
        reason: 'the command is longer than 64 KiB and is not analysed',
      });
      return;
    }
    if (source.includes('\0')) {
      a.findings.push({ effect: 'ask', rule: 'analysis:nul', reason: 'the command contains a NUL byte' });
      return;
    }
    if (source.includes('\r')) {
      // CR is a word character for bash (`EOF\r` is another delimiter, `ls\r` another command)
      // but editors and terminals hide it: outside the subset, and read without it too for the denies
      if (!a.outside.includes(CR_GAP)) a.outside.push(CR_GAP);
      if (depth < MAX_DEPTH) this.#analyzeInto(source.replace(/\r/g, ''), depth + 1, a);
    }
    if (this.fastPath && this.#plainList(source, depth, a)) return;
    let file: ShNode;
    try {
      file = this.parser.parse(source);
    } catch (err) {
      const msg = err instanceof ShellParseError ? err.message : String(err);
      a.findings.push({
        effect: 'ask',
        rule: 'analysis:parse-error',
        reason: `the command does not parse as a shell command (${msg})`,
      });
      return;
    }
    for (const gap of subsetGaps(this.parser, file, source))
      if (!a.outside.includes(gap)) a.outside.push(gap);
    const funcs: ShNode[] = [];
    this.parser.walk(file, (node, type) => {
      if (type === 'Stmt') this.#stmt(node, depth, a);
      else if (type === 'DeclClause') this.#decl(node, depth, a);
      else if (type === 'FuncDecl') funcs.push(node);
      else if (type === 'ForClause' || type === 'WordIter') this.#loopVar(node, type, depth, a);
      else if (type === 'ArithmCmd' || type === 'LetClause') this.#pseudo('let', [], depth, a);
      if (EVAL_CONTEXTS.has(type) || (type === 'ParamExp' && !isPlainParam(node)))
        this.#codeInStrings(node, depth, a);
      else if (
        type === 'BinaryCmd' &&
        (BIN_OPS[node.Op as number] === '|' || BIN_OPS[node.Op as number] === '|&')
      ) {
        pipelineFindings(this.parser, node, a);
        const script = echoedScript(this.parser, node);
        if (script !== undefined) this.#hidden({ line: script }, depth, a);
      }
      return true;
    });
    if (funcs.length > 0) forkBombFindings(this.parser, funcs, a);
    for (const words of constantHeads(this.parser, file)) this.#hidden({ words }, depth, a);
    // bash joins a backslash-newline inside an unquoted here-document before it looks for the
    // delimiter, so `E\<newline>OF` ends it there; read the line the way bash may, for the denies too
    if (depth < MAX_DEPTH && a.outside.some((g) => g.startsWith('a here-document and a backslash-newline')))
      this.#analyzeInto(source.replace(/\\\r?\n/g, ''), depth + 1, a);
  }

  #words(list: unknown): ShellWord[] {
    return ((list as ShNode[]) ?? []).map((w) => resolveWord(this.parser, w));
  }

  #stmt(stmt: ShNode, depth: number, a: CommandAnalysis): void {
    const redirs = ((stmt.Redirs as ShNode[]) ?? []).map((r) => ({
      node: r,
      op: REDIR_OPS[r.Op as number] ?? '?',
    }));
    for (const r of redirs) {
      if (r.op === '<<' || r.op === '<<-') continue; // heredoc bodies are walked for substitutions
      const fd = (r.node.N as ShNode | null)?.Value;
      if (r.node.Word)
        a.redirections.push({
          op: r.op,
          target: resolveWord(this.parser, r.node.Word as ShNode),
          ...(fd !== undefined ? { fd: String(fd) } : {}),
        });
    }
    const cmd = stmt.Cmd as ShNode | null;
    if (!cmd || this.parser.type(cmd) !== 'CallExpr') return;
    const words = this.#words(cmd.Args);
    const assigns = ((cmd.Assigns as ShNode[]) ?? []).map((as) =>
      String((as.Name as ShNode | null)?.Value ?? '?'),
    );
    if (((cmd.Assigns as ShNode[]) ?? []).length > 0) this.#codeInStrings(cmd, depth, a);
    const sc = this.#simple(words, assigns, depth, a);
    if (sc && EVAL_BUILTINS.has(sc.name)) this.#codeInStrings(cmd, depth, a);
    if (!sc) return;
    // stdin of an interpreter: heredoc / here-string with a static body is analysed as its script
    const stdin = redirs.find((r) => ['<<', '<<-', '<<<', '<'].includes(r.op));
    this.#interpreterInput(sc, stdin, depth, a);
  }

  #simple(
    words: ShellWord[],
    assigns: string[],
    depth: number,
    a: CommandAnalysis,
  ): SimpleCommand | undefined {
    if (words.length === 0) {
      a.commands.push({
        words,
        argv: [],
        name: '',
        path: '',
        wrappers: [],
        assigns,
        dynamicArgs: false,
        depth,
        text: assigns.map((n) => `${n}=…`).join(' '),
      });
      return undefined;
    }
    const u: Unwrapped = unwrap(words);
    const head = u.argv[0];
    const sc: SimpleCommand = {
      words,
      argv: u.argv,
      name: head && !head.dynamic ? head.text : '',
      path: u.path,
      wrappers: u.wrappers,
      assigns: [...assigns, ...u.assigns],
      dynamicArgs: u.dynamicArgs,
      depth,
      text: [...assigns.map((n) => `${n}=…`), render(words)].join(' '),
      ...(u.unknowable ? { unknowable: u.unknowable } : {}),
      ...(u.risky ? { wrapperRisk: u.risky } : {}),
    };
    a.commands.push(sc);
    if (u.unknowable)
      a.findings.push({
        effect: 'ask',
        rule: 'analysis:unknowable',
        reason: `in \`${sc.text}\`: ${u.unknowable}`,
      });
    if (!head || head.dynamic)
      a.findings.push({
        effect: 'ask',
        rule: 'analysis:dynamic-command',
        reason: `the command name in \`${sc.text}\` is only known when it runs`,
      });
    else if (head.glob)
      a.findings.push({
        effect: 'ask',
        rule: 'analysis:glob-command',
        reason: `the command name \`${head.text}\` is a glob pattern`,
      });
    else this.#nested(sc, depth, a);
    return sc;
  }

  /** sh -c STRING, eval ARGS, watch ARGS, find -exec CMD ;, su -c: analyse the inner command line. */
  #nested(sc: SimpleCommand, depth: number, a: CommandAnalysis): void {
    const name = sc.name;
    const args = sc.argv.slice(1);
    if (RUNNERS.has(name)) {
      if (depth < MAX_DEPTH) this.#runnerArgs(sc, depth, a);
    } else if (SHELLS.has(name)) {
      const script = shellDashC(args);
      if (script === undefined) return;
      if (script === null || script.dynamic) {
        const dl = script ? this.#hasDownloaderInside(script) : false;
        a.findings.push(
          dl
            ? {
                effect: 'deny',
                rule: 'builtin:download-exec',
                reason: `\`${sc.text}\` runs a downloaded script`,
              }
            : {
                effect: 'ask',
                rule: 'analysis:dynamic-script',
                reason: `\`${sc.text}\` runs a command string that is only known when it runs`,
              },
        );
        return;
      }
      this.#analyzeInto(script.text, depth + 1, a);
    } else if (name === 'eval' || name === 'watch') {
      const rest = name === 'watch' ? skipWatchOptions(args) : args;
      if (rest.some((w) => w.dynamic)) {
        a.findings.push({
          effect: 'ask',
          rule: 'analysis:dynamic-script',
          reason: `\`${sc.text}\` evaluates text that is only known when it runs`,
        });
        return;
      }
      this.#analyzeInto(rest.map((w) => w.text).join(' '), depth + 1, a);
    } else if (name === 'trap') {
      const action = args[0];
      if (!action || action.text === '-' || action.text.startsWith('-') || args.length < 2) return;
      if (action.dynamic)
        a.findings.push({
          effect: 'ask',
          rule: 'analysis:dynamic-script',
          reason: `\`${sc.text}\` sets a trap whose text is only known when it runs`,
        });
      else this.#analyzeInto(action.text, depth + 1, a);
    } else if (name === 'find') {
      for (let i = 0; i < args.length; i++) {
        if (!['-exec', '-execdir', '-ok', '-okdir'].includes((args[i] as ShellWord).text)) continue;
        let j = i + 1;
        while (j < args.length && ![';', '+'].includes((args[j] as ShellWord).text)) j++;
        const inner = args.slice(i + 1, j);
        if (inner.length > 0) {
          const sub = this.#simple(inner, [], depth, a);
          if (sub) sub.dynamicArgs = true;
        }
        i = j;
      }
    }
  }

  /** Runners: every candidate command in their arguments is analysed (see runnerCandidates). */
  #runnerArgs(sc: SimpleCommand, depth: number, a: CommandAnalysis): void {
    // a wrapper we could follow that runs nothing (`command -v sudo`, bare `env`): nothing to guess
    if (sc.name in WRAPPERS && !sc.unknowable) return;
    for (const c of runnerCandidates(sc.argv)) this.#hidden(c, depth, a);
  }

  /** Strings bash evaluates as code (see codeStrings); a fragment that does not parse is no finding. */
  #codeInStrings(node: ShNode, depth: number, a: CommandAnalysis): void {
    if (depth >= MAX_DEPTH) return;
    for (const line of codeStrings(this.parser, node)) {
      const before = a.findings.length;
      this.#analyzeInto(line, depth + 1, a);
      const kept = a.findings.slice(before).filter((f) => f.rule !== 'analysis:parse-error');
      a.findings.splice(before, a.findings.length - before, ...kept);
    }
  }

  /** A command line or a word list found where the analysis would not otherwise look; marked as guessed. */
  #hidden(c: HiddenCommand, depth: number, a: CommandAnalysis): void {
    if (depth >= MAX_DEPTH) return;
    if ('line' in c) {
      this.#analyzeInto(c.line, depth + 1, a);
      return;
    }
    const before = a.commands.length;
    this.#simple(c.words, [], depth + 1, a);
    for (const sc of a.commands.slice(before)) sc.guessed = true;
  }

  #hasDownloaderInside(word: ShellWord): boolean {
    return (word.substCommands ?? []).some((n) => DOWNLOADERS.has(n));
  }

  /** An interpreter fed by a pipe / heredoc / file: its script is the data, so look at it. */
  #interpreterInput(
    sc: SimpleCommand,
    stdin: { node: ShNode; op: string } | undefined,
    depth: number,
    a: CommandAnalysis,
  ): void {
    const name = interpreterName(sc.name);
    if (!INTERPRETERS.has(name) && name !== 'source' && name !== '.') return;
    const args = sc.argv.slice(1);
    const firstOperand = args.find((w) => !w.text.startsWith('-') || w.dynamic);
    if (firstOperand?.dynamic) {
      if (this.#hasDownloaderInside(firstOperand)) {
        a.findings.push({
          effect: 'deny',
          rule: 'builtin:download-exec',
          reason: `\`${sc.text}\` runs a downloaded script`,
        });
        return;
      }
      a.findings.push({
        effect: 'ask',
        rule: 'analysis:dynamic-script',
        reason: `\`${sc.text}\` runs a script that is only known when it runs`,
      });
      return;
    }
    const readsStdin =
      firstOperand === undefined ||
      firstOperand.text === '-' ||
      firstOperand.text === '/dev/stdin' ||
      args.some((w) => w.text === '-s');
    if (!readsStdin || !stdin || SHELLS.has(name) === false) {
      if (readsStdin && stdin && stdin.op !== '<')
        a.findings.push({
          effect: 'ask',
          rule: 'analysis:interpreter-stdin',
          reason: `\`${sc.text}\` runs a script given on its standard input`,
        });
      return;
    }
    if (stdin.op === '<') {
      a.findings.push({
        effect: 'ask',
        rule: 'analysis:interpreter-stdin',
        reason: `\`${sc.text}\` runs a script read from a file`,
      });
      return;
    }
    const body = (stdin.op === '<<<' ? stdin.node.Word : stdin.node.Hdoc) as ShNode | null;
    const text = body ? resolveWord(this.parser, body) : undefined;
    if (!text || text.dynamic)
      a.findings.push({
        effect: 'ask',
        rule: 'analysis:dynamic-script',
        reason: `\`${sc.text}\` runs a script whose text is only known when it runs`,
      });
    else this.#analyzeInto(text.text, depth + 1, a);
  }

  /** `for PATH in …` assigns a variable like `PATH=…` does. */
  #loopVar(node: ShNode, type: string, depth: number, a: CommandAnalysis): void {
    if (type !== 'WordIter') return;
    const name = String((node.Name as ShNode | null)?.Value ?? '');
    if (name) this.#pseudo('', [name], depth, a);
  }

  /** A construct that is not a simple command but changes state: no rule can cover it. */
  #pseudo(name: string, assigns: string[], depth: number, a: CommandAnalysis): void {
    const words = name ? [{ text: name, dynamic: false, glob: false, params: [] }] : [];
    a.commands.push({
      words,
      argv: words,
      name,
      path: name,
      wrappers: [],
      assigns,
      dynamicArgs: false,
      depth,
      text: name || assigns.map((n) => `${n}=…`).join(' '),
    });
  }

  #decl(node: ShNode, depth: number, a: CommandAnalysis): void {
    const variant = String((node.Variant as ShNode | null)?.Value ?? 'declare');
    const names = ((node.Args as ShNode[]) ?? []).map((as) =>
      String((as.Name as ShNode | null)?.Value ?? ''),
    );
    const word: ShellWord = { text: variant, dynamic: false, glob: false, params: [] };
    a.commands.push({
      words: [word],
      argv: [word],
      name: variant,
      path: variant,
      wrappers: [],
      assigns: names.filter(Boolean),
      dynamicArgs: false,
      depth,
      text: `${variant} ${names.join(' ')}`.trim(),
    });
  }
}

export type { CommandAnalysis, Finding, Redirection, SimpleCommand };
export { basename, type interpreterName, type shellDashC };
