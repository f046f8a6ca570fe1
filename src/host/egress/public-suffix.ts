import { createRequire } from 'node:module';
import { domainToASCII } from 'node:url';
import { parse } from 'tldts';

/**
 * Public suffixes (the Public Suffix List, ICANN and private sections, through tldts): names
 * under which anyone can register a host — `com`, `co.uk`, `github.io`, `s3.amazonaws.com`.
 * An allow entry that is or covers one allows hosts of strangers, so the config refuses it.
 */

const LISTED = { allowPrivateDomains: true, validateHosts: false } as const;

/** True when the PSL lists `name` itself as a public suffix (ICANN or private section). */
export function isListedPublicSuffix(name: string): boolean {
  const r = parse(name, LISTED);
  return r.publicSuffix === name && (r.isIcann === true || r.isPrivate === true);
}

/**
 * Why a wildcard over `domain` (`*.domain` or `.domain`) would cover a public suffix, or null.
 * Covered: a listed suffix (every delegated top-level name is listed), a name whose children
 * are suffixes by a PSL wildcard rule (`*.ck`), or a name with a listed suffix below it
 * (`amazonaws.com` holds `s3.amazonaws.com`). A top-level name the list does not know
 * (`.test`, `.internal`, `.corp`) is a private namespace and stays allowed.
 */
export function wildcardCoversPublicSuffix(domain: string): string | null {
  if (isListedPublicSuffix(domain)) return `"${domain}" is a public suffix`;
  if (isListedPublicSuffix(`cowork-probe.${domain}`))
    return `every name directly under "${domain}" is a public suffix`;
  const below = suffixAncestors()?.get(domain);
  if (below) return `"${below}", a public suffix, is under it`;
  return null;
}

let ancestors: Map<string, string> | null | undefined;

/**
 * name → one listed suffix at or below it, built once from the PSL trie that tldts ships.
 * The trie is tldts' internal data: when its shape is not what this code reads (a tldts
 * update), the check falls back to the three tests above instead of guessing.
 */
function suffixAncestors(): Map<string, string> | null {
  if (ancestors !== undefined) return ancestors;
  ancestors = null;
  try {
    const require = createRequire(import.meta.url);
    const t = require('tldts/dist/cjs/src/data/trie.js') as Partial<TrieData>;
    const rules = readRules(t);
    if (!rules || !['com', 'co.uk', 'github.io'].every((r) => rules.includes(r))) return null;
    const map = new Map<string, string>();
    for (const rule of rules) {
      const ascii = rule
        .split('.')
        .map((l) => (l === '*' ? l : domainToASCII(l) || l))
        .join('.');
      const labels = ascii.split('.');
      for (let i = 1; i < labels.length; i++) {
        const up = labels.slice(i).join('.');
        if (!map.has(up)) map.set(up, ascii.replace(/^\*\./, 'every name under '));
      }
    }
    ancestors = map;
  } catch {
    ancestors = null;
  }
  return ancestors;
}

interface TrieData {
  nodeFlags: Uint8Array;
  edgeStart: ArrayLike<number>;
  edgeLength: ArrayLike<number>;
  edgeChild: ArrayLike<number>;
  labelText: string;
  rulesRoot: number;
}

function readRules(t: Partial<TrieData>): string[] | null {
  const { nodeFlags, edgeStart, edgeLength, edgeChild, labelText, rulesRoot } = t;
  if (!nodeFlags || !edgeStart || !edgeLength || !edgeChild || typeof labelText !== 'string') return null;
  if (typeof rulesRoot !== 'number') return null;
  const offsets: number[] = [];
  for (let e = 0, o = 0; e < edgeLength.length; e++) {
    offsets.push(o);
    o += edgeLength[e] ?? 0;
  }
  const rules: string[] = [];
  const stack: { node: number; name: string; depth: number }[] = [{ node: rulesRoot, name: '', depth: 0 }];
  while (stack.length > 0) {
    const { node, name, depth } = stack.pop() as { node: number; name: string; depth: number };
    if (depth > 16) return null; // no PSL rule is this deep: the data is not what we think it is
    for (let e = edgeStart[node] ?? 0; e < (edgeStart[node + 1] ?? 0); e++) {
      const label = labelText.slice(offsets[e], (offsets[e] ?? 0) + (edgeLength[e] ?? 0));
      const child = edgeChild[e] ?? 0;
      const full = name === '' ? label : `${label}.${name}`;
      if ((nodeFlags[child] ?? 0) !== 0) rules.push(full);
      stack.push({ node: child, name: full, depth: depth + 1 });
    }
  }
  return rules;
}
