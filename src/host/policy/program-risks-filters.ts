import { longHit, type RiskCheck, shortHit } from './option-match.js';
import type { ShellWord } from './words.js';

/**
 * Risk tables of the text filters, archivers and pagers (sed, awk, sort, tar, less/man, diff):
 * programs whose "data" arguments include little programs or output files.
 */

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
export const sed: RiskCheck = (argv) => {
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
export const awk: RiskCheck = (argv) => {
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

export const sort: RiskCheck = (argv, from) => {
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
export const tar: RiskCheck = (argv) => {
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
export const pager: RiskCheck = (argv, from) => {
  for (let i = Math.max(from, 1); i < argv.length; i++) {
    const t = (argv[i] as ShellWord).text;
    if (t.startsWith('+') || t.startsWith('-+')) return `${argv[0]?.text} ${t} runs pager commands at start`;
    if (longHit(t, PAGER_RISKY_LONG)) return `${argv[0]?.text} ${t} writes a file or runs a program`;
    if (shortHit(t, 'oOkPHC', '')) return `${argv[0]?.text} ${t} writes a file or runs a program`;
  }
  return undefined;
};

/** GNU diff -l pipes its output through pr; sdiff/diff3 run --diff-program. */
export const diff: RiskCheck = (argv, from) => {
  for (let i = Math.max(from, 1); i < argv.length; i++) {
    const t = (argv[i] as ShellWord).text;
    if (t === '--') break;
    if (longHit(t, ['paginate', 'diff-program']) || shortHit(t, 'l', 'CDFIStUWXx'))
      return `diff ${t} runs another program`;
  }
  return undefined;
};
