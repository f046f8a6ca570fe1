import { INTERPRETERS, interpreterName } from './shell-vocab.js';
import type { ShellWord } from './words.js';

/**
 * Arguments that make a trusted program execute something or write a file. An allow rule
 * `Bash(find:*)` trusts find for reading, not `find . -exec …`; a prefix rule vouches for the
 * words it spells out, and this table judges the rest (from index `from`). Each entry is a
 * positive or negative list per program, written against its real option parser: GNU getopt and
 * argparse accept any unique abbreviation of a long option, so `--outp=x` is `--output=x`.
 * Returns the reason to ask, or undefined.
 */
export type RiskCheck = (argv: ShellWord[], from: number) => string | undefined;

/** `--name[=v]` → name, if it abbreviates (or is) one of `risky`. Ambiguous prefixes count as hits. */
function longHit(text: string, risky: readonly string[]): string | undefined {
  if (!text.startsWith('--') || text.length < 3) return undefined;
  const name = text.slice(2).split('=')[0] as string;
  return risky.find((r) => r === name || (name.length >= 1 && r.startsWith(name)));
}

/** Short-option cluster `-xvfo…`: the first risky letter before a value-taking one, if any. */
function shortHit(text: string, risky: string, takesValue: string): string | undefined {
  if (!/^-[^-]/.test(text)) return undefined;
  for (const c of text.slice(1)) {
    if (risky.includes(c)) return c;
    if (takesValue.includes(c)) return undefined;
  }
  return undefined;
}

const FIND_ACTIONS = new Set([
  '-exec',
  '-execdir',
  '-ok',
  '-okdir',
  '-delete',
  '-fprint',
  '-fprint0',
  '-fprintf',
  '-fls',
]);
const find: RiskCheck = (argv, from) => {
  for (let i = Math.max(from, 1); i < argv.length; i++) {
    const t = (argv[i] as ShellWord).text;
    if (FIND_ACTIONS.has(t)) return `find ${t} runs a command, deletes or writes files`;
  }
  return undefined;
};

/** git subcommands that only read (when the rule does not name the subcommand itself). */
const GIT_READERS = new Set([
  'status',
  'diff',
  'log',
  'show',
  'blame',
  'rev-parse',
  'ls-files',
  'describe',
  'shortlog',
  'grep',
  'cat-file',
  'ls-tree',
  'rev-list',
  'whatchanged',
  'version',
]);
const GIT_SAFE_GLOBALS = new Set([
  '--no-pager',
  '-P',
  '--no-optional-locks',
  '--literal-pathspecs',
  '--no-replace-objects',
]);
const GIT_RISKY_LONG = [
  'output',
  'ext-diff',
  'open-files-in-pager',
  'upload-pack',
  'receive-pack',
  'exec',
  'output-directory',
  'textconv',
  'show-signature',
];
const git: RiskCheck = (argv, from) => {
  let i = 1;
  for (; i < argv.length; i++) {
    const t = (argv[i] as ShellWord).text;
    if (!t.startsWith('-')) break;
    if (!GIT_SAFE_GLOBALS.has(t))
      return `git ${t} changes which configuration, programs or repository git uses`;
  }
  const sub = argv[i]?.text;
  if (sub === undefined) return undefined;
  if (i >= from && !GIT_READERS.has(sub)) return `git ${sub} changes the repository or runs programs`;
  for (let j = Math.max(i + 1, from); j < argv.length; j++) {
    const t = (argv[j] as ShellWord).text;
    if (t === '--') break;
    const l = longHit(t, GIT_RISKY_LONG);
    if (l) return `git ${sub} --${l} writes a file or runs a program`;
    if (sub === 'grep' && /^-[^-]*O/.test(t)) return 'git grep -O runs a pager program';
  }
  return undefined;
};

const PYTEST_RISKY_LONG = [
  'basetemp',
  'override-ini',
  'rootdir',
  'config-file',
  'confcutdir',
  'junitxml',
  'junit-xml',
  'junit-prefix',
  'result-log',
  'resultlog',
  'pastebin',
  'debug',
  'pdbcls',
  'pdb',
  'trace',
  'log-file',
  'report-log',
  'html',
  'cov-report',
  'cov',
  'cov-config',
  'inifile',
  'pyargs',
  'plugins',
  'import-mode',
  'lsof',
  'log-file-level',
];
/** Exact pytest options that only select, report or order tests (argparse prefers an exact match). */
const PYTEST_SAFE_LONG = new Set([
  'co',
  'collect-only',
  'collectonly',
  'lf',
  'last-failed',
  'ff',
  'failed-first',
  'nf',
  'new-first',
  'sw',
  'stepwise',
  'tb',
  'maxfail',
  'durations',
  'strict-markers',
  'disable-warnings',
  'no-header',
  'no-summary',
  'showlocals',
  'verbose',
  'quiet',
  'exitfirst',
  'capture',
  'ignore',
  'deselect',
  'runxfail',
  'color',
  'setup-show',
  'setup-only',
  'setup-plan',
  'fixtures',
  'markers',
  'version',
  'help',
  'cache-clear',
  'cache-show',
  'doctest-modules',
  'log-level',
  'log-cli-level',
  'full-trace',
  'strict',
  'continue-on-collection-errors',
  'noconftest',
  'keep-duplicates',
]);
export const pytest: RiskCheck = (argv, from) => {
  for (let i = Math.max(from, 1); i < argv.length; i++) {
    const t = (argv[i] as ShellWord).text;
    if (t === '--') break;
    if (t.startsWith('@')) return `pytest ${t} reads more arguments from a file`;
    if (t.startsWith('--') && PYTEST_SAFE_LONG.has(t.slice(2).split('=')[0] as string)) continue;
    const l = longHit(t, PYTEST_RISKY_LONG);
    if (l) return `pytest --${l} loads code, changes configuration or writes outside the tests`;
    if (t.startsWith('--')) continue;
    const s = shortHit(t, 'poc', 'kmrWn');
    if (s) return `pytest -${s} loads a plugin or changes configuration`;
  }
  return undefined;
};

const PY_FLAGS = new Set(['-B', '-E', '-I', '-s', '-S', '-u', '-q', '-b', '-bb', '-O', '-OO', '-P', '-R']);
const python: RiskCheck = (argv, from) => {
  for (let i = 1; i < argv.length; i++) {
    const t = (argv[i] as ShellWord).text;
    if (['-V', '--version', '-h', '--help', '-VV'].includes(t)) continue;
    if (t === '-m') {
      const mod = argv[i + 1]?.text;
      if (mod === 'pytest' || mod === 'py.test') return pytest(argv, Math.max(from, i + 2));
      return i + 1 >= from ? `python -m ${mod ?? ''} runs a module` : undefined;
    }
    if (PY_FLAGS.has(t)) continue;
    if ((t === '-W' || t === '-X') && i + 1 < argv.length) {
      if (i + 1 >= from && t === '-X') return 'python -X changes how the interpreter runs';
      i++;
      continue;
    }
    if (i < from) continue;
    if (t === '-c' || /^-[A-Za-z]*c/.test(t)) return 'python -c runs inline code';
    if (t.startsWith('-') && t !== '-') return `python ${t} is not an option known to be harmless`;
    return `python runs the script ${t}`;
  }
  return undefined;
};

const VERSION_ONLY = new Set(['--version', '-v', '-V', '--help', '-h', 'version']);
const interpreter: RiskCheck = (argv, from) => {
  for (let i = Math.max(from, 1); i < argv.length; i++) {
    const t = (argv[i] as ShellWord).text;
    if (!VERSION_ONLY.has(t)) return `${argv[0]?.text} ${t} runs code`;
  }
  return undefined;
};

/** A sed script that only substitutes, prints and deletes: no e/w/W/r/R commands or s///e, s///w flags. */
export function sedScriptRisk(script: string): string | undefined {
  let i = 0;
  const n = script.length;
  const skipRe = (delim: string): boolean => {
    while (i < n && script[i] !== delim) {
      if (script[i] === '\\') i++;
      if (script[i] === '\n') return false;
      i++;
    }
    if (i >= n) return false;
    i++;
    return true;
  };
  while (i < n) {
    const c = script[i] as string;
    if (/[\s;{}!,]/.test(c) || /[0-9$~+]/.test(c)) {
      i++;
      continue;
    }
    if (c === '/' || c === '\\') {
      const d = c === '\\' ? script[i + 1] : '/';
      i += c === '\\' ? 2 : 1;
      if (!d || !skipRe(d)) return 'a sed address could not be read';
      while (i < n && /[IM]/.test(script[i] as string)) i++;
      continue;
    }
    i++;
    if (c === 's' || c === 'y') {
      const d = script[i];
      if (!d || d === '\n' || d === '\\') return `sed ${c} command could not be read`;
      i++;
      if (!skipRe(d) || !skipRe(d)) return `sed ${c} command could not be read`;
      if (c === 's') {
        const flags = /^[gpiImM0-9]*/.exec(script.slice(i))?.[0] ?? '';
        i += flags.length;
        if (i < n && /[ew]/.test(script[i] as string))
          return `sed s///${script[i]} runs a command or writes a file`;
      }
      continue;
    }
    if ('pPdDqQ=nNgGhHxlzF'.includes(c)) continue;
    if ('btT:'.includes(c)) {
      while (i < n && script[i] !== ';' && script[i] !== '\n') i++;
      continue;
    }
    if ('aic'.includes(c)) {
      while (i < n && script[i] !== '\n') i++;
      continue;
    }
    return `sed command \`${c}\` runs a command, reads or writes a file, or is not known`;
  }
  return undefined;
}

const SED_FLAGS = new Set([
  '-n',
  '--quiet',
  '--silent',
  '-E',
  '-r',
  '--regexp-extended',
  '-s',
  '--separate',
  '-u',
  '--unbuffered',
  '-z',
  '--null-data',
  '--posix',
  '--debug',
  '--sandbox',
]);
/** The whole command line is judged: a sed script is code even when the rule names its first words. */
const sed: RiskCheck = (argv) => {
  let scriptSeen = false;
  for (let i = 1; i < argv.length; i++) {
    const t = (argv[i] as ShellWord).text;
    if (/^(-i|--in-place|--in|--in-|--in-p)/.test(t) || (/^-[a-zA-Z]+$/.test(t) && t.slice(1).includes('i')))
      return 'sed -i edits files in place';
    if (t === '-f' || t.startsWith('--file') || /^-[a-zA-Z]*f/.test(t))
      return 'sed -f runs a script from a file';
    if (t === '-e' || t === '--expression') {
      const s = argv[i + 1]?.text ?? '';
      scriptSeen = true;
      const r = sedScriptRisk(s);
      if (r) return r;
      i++;
      continue;
    }
    if (t.startsWith('--expression=')) {
      scriptSeen = true;
      const r = sedScriptRisk(t.slice('--expression='.length));
      if (r) return r;
      continue;
    }
    if (/^-[nErsuz]+$/.test(t) || SED_FLAGS.has(t)) continue;
    if (t.startsWith('-') && t !== '-') return `sed ${t} is not an option known to be harmless`;
    if (!scriptSeen) {
      scriptSeen = true;
      const r = sedScriptRisk(t);
      if (r) return r;
    }
  }
  return undefined;
};

const AWK_DANGER = /system|\||>|getline|@|ENVIRON\s*\[|fflush|close|printf?\s*>/;
const awk: RiskCheck = (argv) => {
  let programSeen = false;
  for (let i = 1; i < argv.length; i++) {
    const t = (argv[i] as ShellWord).text;
    if (t === '-F' || t === '-v') {
      i++;
      continue;
    }
    if (/^-[Fv]./.test(t)) continue;
    if (t === '--') continue;
    if (t.startsWith('-')) return `awk ${t} loads a program or an extension we do not read`;
    if (!programSeen) {
      programSeen = true;
      if (AWK_DANGER.test(t)) return 'the awk program runs commands, reads or writes files';
    }
  }
  return undefined;
};

const sort: RiskCheck = (argv, from) => {
  for (let i = Math.max(from, 1); i < argv.length; i++) {
    const t = (argv[i] as ShellWord).text;
    if (t === '--') break;
    const l = longHit(t, ['output', 'compress-program', 'files0-from', 'random-source']);
    if (l) return `sort --${l} writes a file or runs a program`;
    if (shortHit(t, 'o', 'ktST')) return 'sort -o writes a file';
  }
  return undefined;
};

const TAR_RISKY_LONG = [
  'to-command',
  'checkpoint-action',
  'use-compress-program',
  'rsh-command',
  'info-script',
  'new-volume-script',
  'rmt-command',
  'extract',
  'get',
  'create',
  'append',
  'update',
  'delete',
  'concatenate',
  'catenate',
];
const tar: RiskCheck = (argv) => {
  let list = false;
  for (const [i, w] of argv.entries()) {
    if (i === 0) continue;
    const t = w.text;
    const l = longHit(t, TAR_RISKY_LONG);
    if (l) return `tar --${l} writes files or runs a program`;
    if (t === '--list') list = true;
    const letters = t.startsWith('--') ? '' : t.startsWith('-') ? t.slice(1) : i === 1 ? t : '';
    if (/[xcruAFI]/.test(letters)) return `tar ${t} writes files or runs a program`;
    if (letters.includes('t')) list = true;
    if (t.includes(':')) return `tar ${t} may name a remote archive (run through rsh)`;
  }
  return list ? undefined : 'tar without --list writes files';
};

const PAGER_RISKY_LONG = [
  'log-file',
  'LOG-FILE',
  'lesskey-file',
  'lesskey-src',
  'pager',
  'html',
  'config-file',
];
const pager: RiskCheck = (argv, from) => {
  for (let i = Math.max(from, 1); i < argv.length; i++) {
    const t = (argv[i] as ShellWord).text;
    if (t.startsWith('+') || t.startsWith('-+')) return `${argv[0]?.text} ${t} runs pager commands at start`;
    if (longHit(t, PAGER_RISKY_LONG)) return `${argv[0]?.text} ${t} writes a file or runs a program`;
    if (shortHit(t, 'oOkPHC', '')) return `${argv[0]?.text} ${t} writes a file or runs a program`;
  }
  return undefined;
};

const always =
  (why: string): RiskCheck =>
  (argv, from) =>
    argv.length > Math.max(from, 1) ? `${argv[0]?.text} ${why}` : undefined;

const tee: RiskCheck = (argv, from) => {
  for (let i = Math.max(from, 1); i < argv.length; i++) {
    const t = (argv[i] as ShellWord).text;
    if (!t.startsWith('-') && t !== '/dev/null') return `tee writes ${t}`;
  }
  return undefined;
};

/** bash builtins that assign to a variable name: `a[$(cmd)]` as that name runs cmd. */
const testBuiltin: RiskCheck = (argv, from) => {
  for (let i = Math.max(from, 1); i < argv.length; i++)
    if (['-v', '-R'].includes((argv[i] as ShellWord).text))
      return `${argv[0]?.text} -v evaluates an array subscript, which can run commands`;
  return undefined;
};
const printfBuiltin: RiskCheck = (argv, from) =>
  argv.slice(Math.max(from, 1)).some((w) => w.text.startsWith('-v'))
    ? 'printf -v assigns to a variable name, whose subscript can run commands'
    : undefined;

const MAKE_RISKY_LONG = ['file', 'makefile', 'directory', 'eval', 'include-dir'];
const make: RiskCheck = (argv, from) => {
  for (let i = Math.max(from, 1); i < argv.length; i++) {
    const t = (argv[i] as ShellWord).text;
    if (longHit(t, MAKE_RISKY_LONG) || shortHit(t, 'fCEI', 'jlWo'))
      return `make ${t} reads another makefile or changes directory`;
    if (/^[A-Za-z_][A-Za-z0-9_]*[:+?]?=/.test(t))
      return `make ${t} overrides a make variable (SHELL, MAKE …)`;
  }
  return undefined;
};

const NPM_RISKY_SUB = new Set([
  'exec',
  'x',
  'install',
  'i',
  'ci',
  'add',
  'update',
  'up',
  'rebuild',
  'explore',
  'init',
  'create',
  'publish',
  'link',
  'ln',
  'uninstall',
  'remove',
  'rm',
  'restart',
  'start',
  'stop',
  'pack',
  'dedupe',
  'prune',
  'config',
  'set',
]);
const npm: RiskCheck = (argv, from) => {
  for (let i = Math.max(from, 1); i < argv.length; i++) {
    const t = (argv[i] as ShellWord).text;
    if (
      longHit(t, [
        'script-shell',
        'node-options',
        'userconfig',
        'globalconfig',
        'prefix',
        'call',
        'shell',
        'workspace',
        'cache',
      ])
    )
      return `npm ${t} changes which programs npm runs`;
    if (t === '-c' || t === '-w') return `npm ${t} runs a command`;
    if (i === 1 && NPM_RISKY_SUB.has(t)) return `npm ${t} installs or runs packages`;
  }
  return undefined;
};

/** GNU diff -l pipes its output through pr; sdiff/diff3 run --diff-program. */
const diff: RiskCheck = (argv, from) => {
  for (let i = Math.max(from, 1); i < argv.length; i++) {
    const t = (argv[i] as ShellWord).text;
    if (t === '--') break;
    if (longHit(t, ['paginate', 'diff-program']) || shortHit(t, 'l', 'CDFIStUWXx'))
      return `diff ${t} runs another program`;
  }
  return undefined;
};

const TABLE: Record<string, RiskCheck> = {
  diff,
  sdiff: diff,
  diff3: diff,
  find,
  git,
  pytest,
  'py.test': pytest,
  python,
  sed,
  awk,
  gawk: awk,
  mawk: awk,
  nawk: awk,
  sort,
  tar,
  less: pager,
  more: pager,
  most: pager,
  man: pager,
  tee,
  test: testBuiltin,
  '[': testBuiltin,
  printf: printfBuiltin,
  make,
  gmake: make,
  npm,
  pnpm: npm,
  yarn: npm,
  npx: always('downloads and runs a package'),
  rsync: always('copies files and can run a remote shell (-e)'),
  ssh: always('can run local commands (ProxyCommand, LocalCommand)'),
  scp: always('can run local commands (-S, ProxyCommand)'),
  sftp: always('can run local commands (-S, ProxyCommand)'),
  perf: always('runs a command'),
};

/** Programs whose every option only reads: extra arguments they cannot see (xargs) are harmless. */
export const ARG_INERT = new Set([
  'grep',
  'egrep',
  'fgrep',
  'wc',
  'head',
  'tail',
  'ls',
  'echo',
  'cat',
  'file',
  'stat',
  'basename',
  'dirname',
  'true',
  'false',
]);

/**
 * Recursive readers (`grep -r DIR`, `diff -r`): with Read rules configured, a directory operand
 * may hold a file the rules protect, so they ask.
 */
export function recursiveRead(argv: ShellWord[]): boolean {
  const name = argv[0]?.text ?? '';
  if (!['grep', 'egrep', 'fgrep', 'rgrep', 'diff', 'rg', 'ag', 'zgrep'].includes(name)) return false;
  if (name === 'rgrep' || name === 'rg' || name === 'ag') return true;
  return argv
    .slice(1)
    .some(
      (w) =>
        /^-[a-zA-Z]*[rR]/.test(w.text) ||
        /^--(r|re|rec|recu|recur|recurs|recursi|recursiv|recursive|dereference-recursive|directories=recurse|d=recurse)$/.test(
          w.text,
        ) ||
        w.text === 'recurse',
    );
}

/** Of those, the ones that never open their arguments as files. */
export const NO_FILE_ARGS = new Set(['echo', 'basename', 'dirname', 'true', 'false']);

/** Names with an argument table: extra unseen arguments (xargs, globs that could expand to options) may be risky. */
export function hasRiskTable(name: string): boolean {
  const n = interpreterName(name);
  return n in TABLE || INTERPRETERS.has(n);
}

export function argumentRisk(argv: ShellWord[], from: number): string | undefined {
  const head = argv[0];
  if (!head) return undefined;
  const n = /^python[23]?$/.test(interpreterName(head.text)) ? 'python' : interpreterName(head.text);
  const check = TABLE[n] ?? (INTERPRETERS.has(n) ? interpreter : undefined);
  return check?.(argv, from);
}
