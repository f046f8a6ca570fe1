import type { ShellWord } from './words.js';

/**
 * Wrappers: commands that run another command given in their arguments. We look through them
 * so `env X=1 nice -n 5 timeout 10 sudo id` is seen as `sudo id`. Each table lists the options
 * that TAKE an argument; other options are flags. An unknown option is treated as a flag.
 */
interface WrapperSpec {
  /** Short options that take a value (as next word or glued, e.g. -n5). */
  shortWithArg: string;
  /** Long options that take a value (as next word or --opt=value). */
  longWithArg: string[];
  /** Positional words before the command (timeout's DURATION). */
  positional?: number;
  /** Leading NAME=value words are environment assignments (env). */
  assigns?: boolean;
  /** The command gets extra arguments we cannot see (xargs). */
  dynamicArgs?: boolean;
  /** These options mean "do not run a command" (command -v, ionice -p). */
  noExec?: string[];
}

export const WRAPPERS: Record<string, WrapperSpec> = {
  env: {
    shortWithArg: 'uCS',
    longWithArg: [
      '--unset',
      '--chdir',
      '--split-string',
      '--default-signal',
      '--ignore-signal',
      '--block-signal',
    ],
    assigns: true,
  },
  nice: { shortWithArg: 'n', longWithArg: ['--adjustment'] },
  timeout: { shortWithArg: 'sk', longWithArg: ['--signal', '--kill-after'], positional: 1 },
  nohup: { shortWithArg: '', longWithArg: [] },
  command: { shortWithArg: '', longWithArg: [], noExec: ['-v', '-V'] },
  exec: { shortWithArg: 'a', longWithArg: [] },
  builtin: { shortWithArg: '', longWithArg: [] },
  time: { shortWithArg: 'fo', longWithArg: ['--format', '--output'] },
  stdbuf: { shortWithArg: 'ioe', longWithArg: ['--input', '--output', '--error'] },
  xargs: {
    shortWithArg: 'ILnPdEsa',
    longWithArg: [
      '--arg-file',
      '--delimiter',
      '--eof',
      '--max-lines',
      '--max-args',
      '--max-procs',
      '--max-chars',
      '--replace',
      '--process-slot-var',
    ],
    dynamicArgs: true,
  },
  setsid: { shortWithArg: '', longWithArg: [] },
  ionice: { shortWithArg: 'cnt', longWithArg: ['--class', '--classdata'], noExec: ['-p', '-P', '-u'] },
  unbuffer: { shortWithArg: '', longWithArg: [] },
  chronic: { shortWithArg: '', longWithArg: [] },
  caffeinate: { shortWithArg: 't', longWithArg: [] },
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
  /** Something we could not follow: e.g. `env -S STRING`, a dynamic wrapper option. */
  unknowable?: string;
}

export function basename(cmd: string): string {
  const i = cmd.lastIndexOf('/');
  return i >= 0 && i < cmd.length - 1 ? cmd.slice(i + 1) : cmd;
}

/** Skip one wrapper's options; returns the index of its command word, or -1 if it runs none. */
function skipOptions(spec: WrapperSpec, words: ShellWord[], start: number, out: Unwrapped): number {
  let i = start;
  let positional = spec.positional ?? 0;
  while (i < words.length) {
    const w = words[i] as ShellWord;
    if (w.dynamic && w.text.startsWith('-')) {
      out.unknowable = `a wrapper option (${w.text}) is not known before running`;
      return -1;
    }
    const t = w.text;
    if (t === '--') {
      i++;
      break;
    }
    if (spec.noExec?.includes(t)) return -1;
    if (t.startsWith('--') && t.length > 2) {
      if (t === '--split-string' || t.startsWith('--split-string=')) {
        out.unknowable = 'env --split-string runs a command line we do not analyse';
        return -1;
      }
      i += spec.longWithArg.includes(t) ? 2 : 1;
      continue;
    }
    if (t.startsWith('-') && t.length > 1 && !/^-\d+$/.test(t)) {
      // a cluster of short flags; the first flag that takes a value consumes the rest or the next word
      const flags = t.slice(1);
      let consumesNext = false;
      for (let k = 0; k < flags.length; k++) {
        const f = flags[k] as string;
        if (spec === WRAPPERS.env && f === 'S') {
          out.unknowable = 'env -S runs a command line we do not analyse';
          return -1;
        }
        if (spec.shortWithArg.includes(f)) {
          consumesNext = k === flags.length - 1;
          break;
        }
      }
      i += consumesNext ? 2 : 1;
      continue;
    }
    if (/^-\d+$/.test(t)) {
      // nice -5 (an adjustment), xargs -0 (a flag): one word either way
      i++;
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
    if (head.dynamic) break;
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
