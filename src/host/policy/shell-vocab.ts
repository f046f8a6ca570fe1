import type { ShellWord } from './words.js';

/** Names and argument conventions of shells and interpreters, shared by the analyser and the dangerous set. */

export const SHELLS = new Set([
  'sh',
  'bash',
  'dash',
  'zsh',
  'ksh',
  'mksh',
  'ash',
  'fish',
  'busybox',
  'rbash',
  'yash',
  'tcsh',
  'csh',
]);
export const INTERPRETERS = new Set([
  ...SHELLS,
  'python',
  'python2',
  'python3',
  'perl',
  'ruby',
  'node',
  'nodejs',
  'php',
  'lua',
  'tclsh',
  'deno',
  'bun',
  'osascript',
  'pwsh',
]);
/**
 * Programs that run a command given somewhere in their arguments, with option tables we do not
 * model (the wrappers in wrappers.ts are modelled exactly). Their arguments are searched for
 * commands, best effort, so the built-in denies and deny rules still see `strace rm -rf /`.
 */
export const RUNNERS = new Set([
  'busybox',
  'toybox',
  'chroot',
  'unshare',
  'nsenter',
  'setpriv',
  'capsh',
  'flock',
  'script',
  'parallel',
  'sem',
  'runuser',
  'sg',
  'su',
  'sudo',
  'doas',
  'pkexec',
  'run0',
  'systemd-run',
  'strace',
  'ltrace',
  'gdb',
  'valgrind',
  'firejail',
  'bwrap',
  'proot',
  'fakeroot',
  'taskset',
  'chrt',
  'numactl',
  'nocache',
  'cpulimit',
  'tsp',
  'schroot',
  'dbus-run-session',
  'xvfb-run',
  'expect',
  'ssh',
  'tmux',
  'screen',
  'prlimit',
  'chpst',
  'cgexec',
  'eatmydata',
  'faketime',
  'torsocks',
  'proxychains',
  'proxychains4',
  'catchsegv',
  'rlwrap',
  'sshpass',
  'lxc-attach',
  'machinectl',
  'perf',
  'unbuffer',
  'setarch',
  'linux32',
  'linux64',
  'setcap',
  'timeout',
  'ionice',
  'nice',
  'nohup',
  'stdbuf',
  'setsid',
  'env',
  'xargs',
  'time',
  'command',
  'builtin',
  'exec',
  'chronic',
]);

/**
 * Builtins that evaluate code, change the shell's state for later commands (cwd, options,
 * variables, traps) or assign to variable names (whose array subscripts run commands). Never
 * auto-approved, whatever the allow rules say: the analyser's view of what follows depends on them.
 */
export const SHELL_STATE = new Set([
  'eval',
  'source',
  '.',
  'exec',
  'trap',
  'alias',
  'unalias',
  'set',
  'shopt',
  'declare',
  'typeset',
  'local',
  'export',
  'readonly',
  'unset',
  'let',
  'read',
  'mapfile',
  'readarray',
  'enable',
  'hash',
  'cd',
  'pushd',
  'popd',
  'umask',
  'ulimit',
  'fc',
  'history',
  'bind',
  'complete',
  'compgen',
  'compopt',
  'getopts',
  'wait',
  'shift',
  'return',
  'break',
  'continue',
  'jobs',
  'fg',
  'bg',
  'disown',
  'suspend',
  'logout',
  'caller',
  'times',
  'builtin',
  'command',
  'coproc',
]);

export const DOWNLOADERS = new Set([
  'curl',
  'wget',
  'fetch',
  'aria2c',
  'http',
  'https',
  'xh',
  'nc',
  'ncat',
  'socat',
]);

export const PLAIN_LIST = /^[A-Za-z0-9_./:@%+,=\- \t]*((&&|\|\||;)[A-Za-z0-9_./:@%+,=\- \t]*)*$/;
export const RESERVED = new Set([
  'if',
  'then',
  'else',
  'elif',
  'fi',
  'do',
  'done',
  'case',
  'esac',
  'while',
  'until',
  'for',
  'in',
  'function',
  'select',
  'time',
  'coproc',
  '!',
  '{',
  '}',
  '[[',
  ']]',
]);

/** python3.11 → python3, so interpreter checks see versions too. */
export function interpreterName(name: string): string {
  const m = /^(python[23]?|perl|ruby|php|lua|node)[\d.]*$/.exec(name);
  return m ? (m[1] as string) : name;
}

/**
 * For a shell's arguments: undefined = no -c; null = -c without a string; else the -c string.
 * Handles clusters such as -ec, -lc and options before it (-o pipefail, +e, --norc).
 */
export function shellDashC(args: ShellWord[]): ShellWord | null | undefined {
  let hasC = false;
  for (let i = 0; i < args.length; i++) {
    const t = (args[i] as ShellWord).text;
    if ((args[i] as ShellWord).dynamic) return hasC ? (args[i] as ShellWord) : undefined;
    if (t === '--') return hasC ? (args[i + 1] ?? null) : undefined;
    if ((t === '-o' || t === '+o' || t === '-O' || t === '+O') && i + 1 < args.length) {
      i++;
      continue;
    }
    if (/^[-+][A-Za-z]+$/.test(t)) {
      if (t.startsWith('-') && t.includes('c')) hasC = true;
      continue;
    }
    if (t.startsWith('--')) continue;
    return hasC ? (args[i] as ShellWord) : undefined;
  }
  return hasC ? null : undefined;
}

export function skipWatchOptions(args: ShellWord[]): ShellWord[] {
  let i = 0;
  while (i < args.length && (args[i] as ShellWord).text.startsWith('-')) {
    const t = (args[i] as ShellWord).text;
    i += t === '-n' || t === '--interval' || t === '-q' || t === '--equexit' ? 2 : 1;
  }
  return args.slice(i);
}
