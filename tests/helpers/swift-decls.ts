import { readFileSync } from 'node:fs';

/**
 * A small reader of the menubar's own Swift (native/menubar/), for the tests that keep it equal
 * to the TypeScript schemas. It is not a Swift parser: it understands the shapes that code is
 * written in — type declarations with brace-delimited bodies, one stored property or enum case
 * per line, and decoders written as `case "wire": self = try .swiftCase(... forKey: .key ...)`.
 * Anything it cannot read makes the calling test fail, never pass.
 */

export interface SwiftProperty {
  name: string;
  /** The declared type, e.g. `String?`, `[MenuItem]`; undefined when only an initial value is given. */
  type: string | undefined;
  optional: boolean;
  /** The initial value's source text (`"pair"`, `RemoteMethod.menuGet`). */
  initial: string | undefined;
  isStatic: boolean;
}

export interface SwiftCase {
  name: string;
  /** The raw value, for `case x = "raw"`; the case name itself when the enum is String-backed without one. */
  raw: string | undefined;
  associated: { label: string; type: string }[];
}

export interface SwiftDecoderBranch {
  /** The discriminator value the branch handles (`"open-dashboard"`). */
  wire: string;
  /** The enum case it builds (`openDashboard`). */
  swiftCase: string;
  /** The CodingKeys cases it reads, in order. */
  keys: string[];
  /** Keys read with decodeIfPresent. */
  optionalKeys: string[];
  /** For `.x(SomeStruct(from: decoder))`: the struct decoded for this branch. */
  decodes: string | undefined;
}

export interface SwiftType {
  kind: 'struct' | 'enum' | 'actor' | 'class' | 'protocol' | 'extension';
  /** Nested types are named `Outer.Inner`. */
  name: string;
  conformances: string[];
  /** The body between the braces, comments blanked. */
  body: string;
  /** The body with every nested `{…}` block emptied: the type's own declarations. */
  members: string;
}

/** Comments become spaces and string contents `_`, keeping every offset; quotes stay. */
function mask(source: string): { noComments: string; masked: string } {
  const out = source.split('');
  const masked = source.split('');
  let i = 0;
  const n = source.length;
  // Each string frame: its closing delimiter; interpolation frames count parentheses.
  type Frame = { kind: 'string'; close: string } | { kind: 'interp'; depth: number };
  const stack: Frame[] = [];
  const blank = (from: number, to: number, c: string, both: boolean) => {
    for (let k = from; k < to; k++) {
      if (source[k] === '\n') continue;
      masked[k] = c;
      if (both) out[k] = ' ';
    }
  };
  while (i < n) {
    const top = stack[stack.length - 1];
    if (top?.kind === 'string') {
      if (source.startsWith(top.close, i)) {
        stack.pop();
        i += top.close.length;
      } else if (source[i] === '\\' && source[i + 1] === '(' && !top.close.endsWith('#')) {
        stack.push({ kind: 'interp', depth: 0 });
        i += 2;
      } else if (source[i] === '\\') {
        blank(i, i + 2, '_', false);
        i += 2;
      } else {
        blank(i, i + 1, '_', false);
        i++;
      }
      continue;
    }
    if (source.startsWith('//', i)) {
      const end = source.indexOf('\n', i);
      const stop = end < 0 ? n : end;
      blank(i, stop, ' ', true);
      i = stop;
    } else if (source.startsWith('/*', i)) {
      const end = source.indexOf('*/', i + 2);
      const stop = end < 0 ? n : end + 2;
      blank(i, stop, ' ', true);
      i = stop;
    } else if (source.startsWith('#"""', i)) {
      stack.push({ kind: 'string', close: '"""#' });
      i += 4;
    } else if (source.startsWith('"""', i)) {
      stack.push({ kind: 'string', close: '"""' });
      i += 3;
    } else if (source.startsWith('#"', i)) {
      stack.push({ kind: 'string', close: '"#' });
      i += 2;
    } else if (source[i] === '"') {
      stack.push({ kind: 'string', close: '"' });
      i++;
    } else {
      if (top?.kind === 'interp') {
        if (source[i] === '(') top.depth++;
        else if (source[i] === ')') {
          if (top.depth === 0) {
            stack.pop();
            i++;
            continue;
          }
          top.depth--;
        }
      }
      i++;
    }
  }
  if (stack.length > 0) throw new Error('swift-decls: unterminated string literal');
  return { noComments: out.join(''), masked: masked.join('') };
}

/** The offset of the `}` that closes the `{` at `open` (in masked text, so braces in strings do not count). */
function closingBrace(masked: string, open: number): number {
  let depth = 0;
  for (let k = open; k < masked.length; k++) {
    if (masked[k] === '{') depth++;
    else if (masked[k] === '}') {
      depth--;
      if (depth === 0) return k;
    }
  }
  throw new Error(`swift-decls: no closing brace for the one at offset ${open}`);
}

/** Empties every nested block of `text` (keeping `{}`), so only depth-0 declarations remain. */
function depthZero(text: string, masked: string): string {
  let out = '';
  let depth = 0;
  for (let k = 0; k < text.length; k++) {
    const c = masked[k];
    if (c === '{') {
      if (depth === 0) out += '{';
      depth++;
    } else if (c === '}') {
      depth--;
      if (depth === 0) out += '}';
    } else if (depth === 0) out += text[k];
    else if (text[k] === '\n') out += '\n';
  }
  return out;
}

const DECL =
  /\b(struct|enum|actor|class|protocol|extension)\s+([A-Za-z_][\w.]*)(?:<[^>{]*>)?\s*(?::\s*([^{]*?))?\s*(?:where\s+[^{]*)?\{/g;

function collect(text: string, masked: string, prefix: string, into: Map<string, SwiftType>): void {
  // Only declarations at depth 0 of `text`: nested ones are found when their parent's body is read.
  const depthAt: number[] = [];
  let depth = 0;
  for (const c of masked) {
    depthAt.push(depth);
    if (c === '{') depth++;
    else if (c === '}') depth--;
  }
  DECL.lastIndex = 0;
  for (let m = DECL.exec(masked); m; m = DECL.exec(masked)) {
    if (depthAt[m.index] !== 0) continue;
    const open = m.index + m[0].length - 1;
    const close = closingBrace(masked, open);
    const body = text.slice(open + 1, close);
    const bodyMasked = masked.slice(open + 1, close);
    const name = prefix + m[2]!;
    const conformances = (m[3] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const type: SwiftType = {
      kind: m[1] as SwiftType['kind'],
      name,
      conformances,
      body,
      members: depthZero(body, bodyMasked),
    };
    if (type.kind !== 'extension') into.set(name, type);
    collect(body, bodyMasked, `${name}.`, into);
    DECL.lastIndex = close + 1;
  }
}

/** Every type declared in the files (nested ones as `Outer.Inner`); extensions are not listed. */
export function swiftTypes(...files: string[]): Map<string, SwiftType> {
  const types = new Map<string, SwiftType>();
  for (const file of files) {
    const { noComments, masked } = mask(readFileSync(file, 'utf8'));
    collect(noComments, masked, '', types);
  }
  return types;
}

export function requireType(types: Map<string, SwiftType>, name: string): SwiftType {
  const t = types.get(name);
  if (!t) throw new Error(`swift-decls: no type '${name}' (have: ${[...types.keys()].join(', ')})`);
  return t;
}

const PROPERTY =
  /^[ \t]*((?:(?:public|private|fileprivate|internal|static|nonisolated)[ \t]+)*)(?:let|var)[ \t]+(\w+)[ \t]*(?::[ \t]*([^=\n{]+?))?[ \t]*(?:=[ \t]*([^\n{]+?))?[ \t]*$/gm;

/** Stored properties (lines without a `{`: computed properties and functions have one). */
export function storedProperties(t: SwiftType): SwiftProperty[] {
  const props: SwiftProperty[] = [];
  PROPERTY.lastIndex = 0;
  for (let m = PROPERTY.exec(t.members); m; m = PROPERTY.exec(t.members)) {
    const type = m[3]?.trim();
    props.push({
      name: m[2]!,
      type,
      optional: type?.endsWith('?') ?? false,
      initial: m[4]?.trim(),
      isStatic: /\bstatic\b/.test(m[1] ?? ''),
    });
  }
  return props;
}

/** Instance stored properties, by name. */
export function fields(t: SwiftType): Map<string, SwiftProperty> {
  return new Map(
    storedProperties(t)
      .filter((p) => !p.isStatic)
      .map((p) => [p.name, p]),
  );
}

/** Splits on commas that are not inside parentheses or brackets. */
function splitTop(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const c of s) {
    if (c === '(' || c === '[') depth++;
    if (c === ')' || c === ']') depth--;
    if (c === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  if (cur.trim()) parts.push(cur);
  return parts.map((p) => p.trim());
}

/** The enum's cases; `raw` defaults to the case name when the enum's raw type is String. */
export function enumCases(t: SwiftType): SwiftCase[] {
  if (t.kind !== 'enum') throw new Error(`swift-decls: '${t.name}' is not an enum`);
  const stringBacked = t.conformances[0] === 'String';
  const cases: SwiftCase[] = [];
  for (const m of t.members.matchAll(/^[ \t]*(?:indirect[ \t]+)?case[ \t]+(.+)$/gm)) {
    for (const part of splitTop(m[1]!)) {
      const cm = /^(\w+)\s*(?:\((.*)\))?\s*(?:=\s*"([^"]*)")?$/.exec(part);
      if (!cm) throw new Error(`swift-decls: cannot read case '${part}' of ${t.name}`);
      const associated = cm[2]
        ? splitTop(cm[2]).map((a) => {
            const am = /^(\w+)\s*:\s*(.+)$/.exec(a);
            if (!am)
              throw new Error(`swift-decls: case ${cm[1]} of ${t.name} has an unlabelled value '${a}'`);
            return { label: am[1]!, type: am[2]!.trim() };
          })
        : [];
      cases.push({ name: cm[1]!, raw: cm[3] ?? (stringBacked ? cm[1] : undefined), associated });
    }
  }
  return cases;
}

/** The body of the type's `init(from decoder: Decoder)`, or undefined if it has none. */
function decoderBody(t: SwiftType): string | undefined {
  const at = t.body.search(/init\(from decoder: Decoder\)\s*throws\s*\{/);
  if (at < 0) return undefined;
  const { masked } = mask(t.body);
  const open = t.body.indexOf('{', at);
  return t.body.slice(open + 1, closingBrace(masked, open));
}

/** The branches of the type's hand-written decoder: one per `case "wire":`. */
export function decoderBranches(t: SwiftType): SwiftDecoderBranch[] {
  const body = decoderBody(t);
  if (body === undefined) throw new Error(`swift-decls: ${t.name} has no init(from decoder: Decoder)`);
  const heads = [...body.matchAll(/\bcase\s+"([^"]+)"\s*:/g)];
  const end = body.search(/\bdefault\s*:/);
  return heads.map((h, i) => {
    const from = h.index! + h[0].length;
    const to = i + 1 < heads.length ? heads[i + 1]!.index! : end >= 0 ? end : body.length;
    const chunk = body.slice(from, to);
    const made = /self\s*=\s*(?:try\s+)?\.(\w+)/.exec(chunk);
    if (!made) throw new Error(`swift-decls: branch "${h[1]}" of ${t.name} does not assign self = .case`);
    const reads = [...chunk.matchAll(/\.(decode\w*)\([^)]*?forKey:\s*\.(\w+)\)/g)];
    return {
      wire: h[1]!,
      swiftCase: made[1]!,
      keys: reads.map((r) => r[2]!),
      optionalKeys: reads.filter((r) => r[1] === 'decodeIfPresent').map((r) => r[2]!),
      decodes: /\.\w+\(\s*(\w+)\(from:\s*decoder\)\s*\)/.exec(chunk)?.[1],
    };
  });
}

/** CodingKeys case name → wire name. */
export function codingKeys(t: SwiftType, types: Map<string, SwiftType>): Map<string, string> {
  const keys = requireType(types, `${t.name}.CodingKeys`);
  return new Map(enumCases(keys).map((c) => [c.name, c.raw ?? c.name]));
}
