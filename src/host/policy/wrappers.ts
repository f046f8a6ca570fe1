import type { ShellWord } from './words.js';

/**
 * Wrappers: commands that run another command given in their arguments. We look through them
 * so `env X=1 nice -n 5 timeout 10 sudo id` is seen as `sudo id`. Each table mirrors the
 * program's real getopt string (GNU coreutils 9.1, findutils 4.9, util-linux 2.38 as in
 * Debian 12): every wrapper stops at its first operand (`+` in the optstring), long options may
 * be abbreviated to any unique prefix, and an option with an OPTIONAL argument takes it only
 * glued (`-e_EOF`, `--eof=_EOF`) — `xargs --replace sh` runs sh. An option the table does not
 * know makes the command unknowable (at least ask), never "a flag".
 */
type Arity = 'flag' | 'arg' | 'opt';

interface WrapperSpec {
  /** Short options: letter → arity. */
  short: Record<string, Arity>;
  /** Long options (without `--`): name → arity. */
  long: Record<string, Arity>;
  /** Positional words before the command (timeout's DURATION). */
  positional?: number;
  /** Leading NAME=value words are environment assignments (env). */
  assigns?: boolean;
  /** The command gets extra arguments we cannot see (xargs). */
  dynamicArgs?: boolean;
  /** These options mean "do not run a command" (command -v, ionice -p). */
  noExec?: string[];
  /** `nice -5`: a leading -NUMBER is an option. */
  numeric?: boolean;
  /** Options (canonical: `-x` or `--name`) that make the wrapped command unknowable. */
  unknowable?: Record<string, string>;
  /** Options that make an otherwise trusted command write or change where it runs (agent: ask). */
  risky?: Record<string, string>;
}

function shorts(flags: string, args = '', opts = ''): Record<string, Arity> {
  const out: Record<string, Arity> = {};
  for (const c of flags) out[c] = 'flag';
  for (const c of args) out[c] = 'arg';
  for (const c of opts) out[c] = 'opt';
  return out;
}

function longs(flags: string[], args: string[] = [], opts: string[] = []): Record<string, Arity> {
  const out: Record<string, Arity> = {};
  for (const c of flags) out[c] = 'flag';
  for (const c of args) out[c] = 'arg';
  for (const c of opts) out[c] = 'opt';
  return out;
}

const HV = ['help', 'version'];

export const WRAPPERS: Record<string, WrapperSpec> = {
  env: {
    short: shorts('iv0', 'uCS'),
    long: longs(
      ['ignore-environment', 'null', 'debug', 'list-signal-handling', ...HV],
      ['unset', 'chdir', 'split-string'],
      ['default-signal', 'ignore-signal', 'block-signal'],
    ),
    assigns: true,
    unknowable: {
      '-S': 'env -S runs a command line we do not analyse',
      '--split-string': 'env --split-string runs a command line we do not analyse',
    },
    risky: {
      '-C': 'env -C changes the directory the command runs in',
      '--chdir': 'env --chdir changes the directory the command runs in',
    },
  },
  nice: { short: shorts('', 'n'), long: longs(HV, ['adjustment']), numeric: true },
  timeout: {
    short: shorts('v', 'ks'),
    long: longs(['preserve-status', 'foreground', 'verbose', ...HV], ['kill-after', 'signal']),
    positional: 1,
  },
  nohup: { short: {}, long: longs(HV) },
  command: { short: shorts('pvV'), long: {}, noExec: ['-v', '-V'] },
  exec: { short: shorts('cl', 'a'), long: {} },
  builtin: { short: {}, long: {} },
  time: {
    short: shorts('apqvV', 'fo'),
    long: longs(['append', 'portability', 'quiet', 'verbose', ...HV], ['format', 'output']),
    risky: { '-o': 'time -o writes a file', '--output': 'time --output writes a file' },
  },
  stdbuf: { short: shorts('', 'ioe'), long: longs(HV, ['input', 'output', 'error']) },
  xargs: {
    short: shorts('0oprtx', 'aEILnPsd', 'eil'),
    long: longs(
      ['null', 'open-tty', 'interactive', 'no-run-if-empty', 'verbose', 'show-limits', 'exit', ...HV],
      ['arg-file', 'delimiter', 'max-args', 'max-chars', 'max-procs', 'process-slot-var'],
      ['eof', 'replace', 'max-lines'],
    ),
    dynamicArgs: true,
    risky: {
      '-I': 'xargs -I substitutes input into the command words',
      '-i': 'xargs -i substitutes input into the command words',
      '--replace': 'xargs --replace substitutes input into the command words',
      '-a': 'xargs -a reads its arguments from a file',
      '--arg-file': 'xargs --arg-file reads its arguments from a file',
    },
  },
  setsid: { short: shorts('cfw'), long: longs(['ctty', 'fork', 'wait', ...HV]) },
  ionice: {
    short: shorts('thV', 'ncpPu'),
    long: longs(['ignore', 'help', 'version'], ['class', 'classdata', 'pid', 'pgid', 'uid']),
    noExec: ['-p', '-P', '-u', '--pid', '--pgid', '--uid'],
  },
  unbuffer: { short: shorts('p'), long: {} },
  chronic: { short: shorts('ev'), long: {} },
};

export interface Unwrapped {
  /** The command that actually runs, argv[0] reduced to its basename. */
  argv: ShellWord[];
  /** argv[0] as written (with its path), before reduction to a basename. */
  path: string;
  /** Wrapper names looked through, outermost first. */
  wrappers: string[];
  /** Environment assignments made by wrappers (env NAME=value). */
  assigns: string[];
  /** The command receives arguments we cannot see. */
  dynamicArgs: boolean;
  /** Something we could not follow: e.g. `env -S STRING`, a dynamic or unknown wrapper option. */
  unknowable?: string;
  /** A wrapper option that writes or changes the directory (the agent must ask). */
  risky?: string;
}

export function basename(cmd: string): string {
  const i = cmd.lastIndexOf('/');
  return i >= 0 && i < cmd.length - 1 ? cmd.slice(i + 1) : cmd;
}

/** Directories whose programs the agent (never root in the guest) cannot replace. */
export const SYSTEM_BIN = /^\/+(usr\/+)?(local\/+)?s?bin\/+[^/]+$/;

/** A name bash looks up in PATH, or a path into a system directory: `./env` is the agent's own file. */
export function isSystemProgram(text: string): boolean {
  return !text.includes('/') || SYSTEM_BIN.test(text);
}

/** GNU getopt_long: exact name, else the unique option it abbreviates. */
export function resolveLong(table: Record<string, Arity>, name: string): string | undefined {
  if (name in table) return name;
  const hits = Object.keys(table).filter((k) => k.startsWith(name));
  return hits.length === 1 ? hits[0] : undefined;
}

/** Skip one wrapper's options; returns the index of its command word, or -1 if it runs none. */
function skipOptions(spec: WrapperSpec, words: ShellWord[], start: number, out: Unwrapped): number {
  let i = start;
  let positional = spec.positional ?? 0;
  const note = (canonical: string): boolean => {
    const u = spec.unknowable?.[canonical];
    if (u) {
      out.unknowable = u;
      return false;
    }
    const r = spec.risky?.[canonical];
    if (r && !out.risky) out.risky = r;
    return true;
  };
  while (i < words.length) {
    const w = words[i] as ShellWord;
    const t = w.text;
    if (w.dynamic && (t.startsWith('-') || positional > 0 || i === start)) {
      out.unknowable = `a wrapper argument (${t}) is not known before running`;
      return -1;
    }
    if (t === '--') {
      i++;
      break;
    }
    if (spec.noExec?.includes(t)) return -1;
    if (t.startsWith('--') && t.length > 2) {
      const eq = t.indexOf('=');
      const name = resolveLong(spec.long, t.slice(2, eq < 0 ? undefined : eq));
      if (!name) {
        out.unknowable = `\`${t}\` is not an option this wrapper is known to take`;
        return -1;
      }
      if (spec.noExec?.includes(`--${name}`)) return -1;
      if (!note(`--${name}`)) return -1;
      i += spec.long[name] === 'arg' && eq < 0 ? 2 : 1;
      continue;
    }
    if (spec.numeric && /^-\d+$/.test(t)) {
      i++;
      continue;
    }
    if (t.startsWith('-') && t.length > 1) {
      const flags = t.slice(1);
      let consumesNext = false;
      for (let k = 0; k < flags.length; k++) {
        const f = flags[k] as string;
        const arity = spec.short[f];
        if (arity === undefined) {
          out.unknowable = `\`-${f}\` is not an option this wrapper is known to take`;
          return -1;
        }
        if (spec.noExec?.includes(`-${f}`)) return -1;
        if (!note(`-${f}`)) return -1;
        if (arity === 'arg') {
          consumesNext = k === flags.length - 1;
          break;
        }
        if (arity === 'opt') break; // optional argument: only the glued rest
      }
      i += consumesNext ? 2 : 1;
      continue;
    }
    if (spec.assigns && /^[A-Za-z_][A-Za-z0-9_]*=/.test(t)) {
      out.assigns.push(t.slice(0, t.indexOf('=')));
      i++;
      continue;
    }
    if (positional > 0) {
      positional--;
      i++;
      continue;
    }
    break;
  }
  // Options after `--` may still hold assignments (env -- A=1 cmd).
  while (spec.assigns && i < words.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test((words[i] as ShellWord).text)) {
    const t = (words[i] as ShellWord).text;
    out.assigns.push(t.slice(0, t.indexOf('=')));
    i++;
  }
  return i < words.length ? i : -1;
}

/** Look through wrappers (nested any number of times) to the command that runs. */
export function unwrap(words: ShellWord[]): Unwrapped {
  const out: Unwrapped = { argv: words, path: '', wrappers: [], assigns: [], dynamicArgs: false };
  let cur = words;
  for (let guard = 0; guard < 32 && cur.length > 0; guard++) {
    const head = cur[0] as ShellWord;
    if (head.dynamic || !isSystemProgram(head.text)) break;
    const name = basename(head.text);
    const spec = WRAPPERS[name];
    if (!spec) break;
    const at = skipOptions(spec, cur, 1, out);
    if (at < 0) break; // the wrapper itself is the command (e.g. bare `env`, `command -v x`)
    out.wrappers.push(name);
    if (spec.dynamicArgs) out.dynamicArgs = true;
    cur = cur.slice(at);
  }
  const first = cur[0];
  out.path = first?.text ?? '';
  out.argv = first && !first.dynamic ? [{ ...first, text: basename(first.text) }, ...cur.slice(1)] : cur;
  return out;
}
