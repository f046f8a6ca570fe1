import { longHit, type RiskCheck, shortHit } from './option-match.js';
import { awk, diff, pager, sed, sort, tar } from './program-risks-filters.js';
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
