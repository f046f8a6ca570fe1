import type { ShellParser, ShNode } from './shell-parser.js';

/** A shell word after quote and backslash resolution. */
export interface ShellWord {
  /** The word's value; expansions are rendered as `$NAME` (simple parameter) or `$(…)`. */
  text: string;
  /** True when the value cannot be known statically (parameter, command, arithmetic expansion, brace expansion). */
  dynamic: boolean;
  /** Unquoted glob characters (* ? [) present: the shell may expand it to other words. */
  glob: boolean;
  /** Simple parameters used, e.g. ['HOME']. */
  params: string[];
  /** Names of the commands run inside $(…), `…`, <(…) and >(…) in this word. */
  substCommands?: string[];
}

const ANSI_SIMPLE: Record<string, string> = {
  a: '\x07',
  b: '\b',
  e: '\x1b',
  E: '\x1b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
  '\\': '\\',
  "'": "'",
  '"': '"',
  '?': '?',
};

/** Decode bash's $'…' escapes (\xHH, \NNN, \uHHHH, \UHHHHHHHH, \cX and the single letters). */
export function decodeAnsiC(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i] as string;
    if (ch !== '\\' || i + 1 >= s.length) {
      out += ch;
      continue;
    }
    const n = s[i + 1] as string;
    if (n in ANSI_SIMPLE) {
      out += ANSI_SIMPLE[n];
      i++;
    } else if (n === 'x' || n === 'u' || n === 'U') {
      const max = n === 'x' ? 2 : n === 'u' ? 4 : 8;
      const m = /^[0-9A-Fa-f]+/.exec(s.slice(i + 2, i + 2 + max));
      if (!m) {
        out += `\\${n}`;
        i++;
        continue;
      }
      out += String.fromCodePoint(Number.parseInt(m[0], 16));
      i += 1 + m[0].length;
    } else if (/[0-7]/.test(n)) {
      const m = /^[0-7]{1,3}/.exec(s.slice(i + 1)) as RegExpExecArray;
      out += String.fromCharCode(Number.parseInt(m[0], 8) & 0xff);
      i += m[0].length;
    } else if (n === 'c' && i + 2 < s.length) {
      out += String.fromCharCode((s.charCodeAt(i + 2) & 0x1f) >>> 0);
      i += 2;
    } else {
      out += `\\${n}`;
      i++;
    }
  }
  return out;
}

/** Unquoted literal: `\x` is x, backslash-newline disappears. Also reports unescaped glob/brace syntax. */
function unquotedLit(v: string): { text: string; glob: boolean; brace: boolean } {
  let text = '';
  let glob = false;
  let plain = ''; // unescaped characters only, to look for brace expansion
  for (let i = 0; i < v.length; i++) {
    const ch = v[i] as string;
    if (ch === '\\') {
      const n = v[i + 1];
      i++;
      if (n === undefined || n === '\n') continue;
      text += n;
      plain += '_';
      continue;
    }
    if (ch === '*' || ch === '?' || ch === '[') glob = true;
    text += ch;
    plain += ch;
  }
  const brace = /\{[^{}]*(,|\.\.)[^{}]*\}/.test(plain);
  return { text, glob, brace };
}

/** Inside double quotes only \$ \` \" \\ and backslash-newline are escapes. */
function dquotedLit(v: string): string {
  return v.replace(/\\([$`"\\\n])/g, (_m, c: string) => (c === '\n' ? '' : c));
}

const BRACE = /\{[^{}]*(,|\.\.)[^{}]*\}/;

/** The word with every quoted or escaped character replaced by `_`: what brace expansion sees. */
function braceShape(parser: ShellParser, parts: ShNode[]): string {
  let s = '';
  for (const part of parts) {
    if (parser.type(part) === 'Lit') s += String(part.Value ?? '').replace(/\\[\s\S]/g, '__');
    else s += '_';
  }
  return s;
}

function isSimpleParam(p: ShNode): boolean {
  return !p.Exp && !p.Repl && !p.Slice && !p.Index && !p.Length && !p.Excl && !p.Width && !p.Names;
}

export function resolveWord(parser: ShellParser, word: ShNode): ShellWord {
  const out: ShellWord = { text: '', dynamic: false, glob: false, params: [] };
  const parts = (word.Parts as ShNode[]) ?? [];
  appendParts(parser, parts, false, out);
  // brace expansion spans quoted parts: `{README.md,.e'nv'}` is two words for bash
  if (!out.dynamic && parts.length > 1 && BRACE.test(braceShape(parser, parts))) out.dynamic = true;
  // a lone `[` cannot match anything but itself: it is the test builtin, not a pattern
  if (out.text === '[' && !out.dynamic) out.glob = false;
  return out;
}

function appendParts(parser: ShellParser, parts: ShNode[], quoted: boolean, out: ShellWord): void {
  for (const part of parts) {
    const t = parser.type(part);
    switch (t) {
      case 'Lit': {
        const v = String(part.Value ?? '');
        if (quoted) out.text += dquotedLit(v);
        else {
          const r = unquotedLit(v);
          out.text += r.text;
          if (r.glob) out.glob = true;
          if (r.brace) out.dynamic = true;
        }
        break;
      }
      case 'SglQuoted': {
        const v = String(part.Value ?? '');
        const text = part.Dollar ? decodeAnsiC(v) : v;
        // bash cuts a word at a NUL (`$'.env\x00.txt'` is `.env`): what follows is not knowable here
        if (text.includes('\0')) out.dynamic = true;
        out.text += text;
        break;
      }
      case 'DblQuoted':
        appendParts(parser, (part.Parts as ShNode[]) ?? [], true, out);
        break;
      case 'ParamExp': {
        const param = part.Param as ShNode | null;
        const name = param ? String(param.Value ?? '') : '';
        out.dynamic = true;
        if (name && isSimpleParam(part)) {
          out.text += `$${name}`;
          out.params.push(name);
        } else {
          // biome-ignore lint/suspicious/noTemplateCurlyInString: the literal text of an opaque expansion
          out.text += '${…}';
        }
        break;
      }
      default:
        // CmdSubst, ArithmExp, ProcSubst, ExtGlob, BraceExp and anything newer: not knowable statically.
        out.dynamic = true;
        out.text += '$(…)';
        if (t === 'CmdSubst' || t === 'ProcSubst') {
          if (!out.substCommands) out.substCommands = [];
          const names = out.substCommands;
          parser.walk(part, (n, nt) => {
            const first = nt === 'CallExpr' ? ((n.Args as ShNode[]) ?? [])[0] : undefined;
            if (first) names.push(resolveWord(parser, first).text.replace(/.*\//, ''));
            return true;
          });
        }
    }
  }
}
