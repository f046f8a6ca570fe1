/*
 * D-Bus variants as the library carries them. Outgoing: `[signature, value]`. Incoming: the
 * signature arrives parsed (`[tree, [value]]`); these helpers turn it back into plain data.
 */

export type OutVariant = [signature: string, value: unknown];

export function variant(signature: string, value: unknown): OutVariant {
  return [signature, value];
}

interface SignatureNode {
  type: string;
  child: SignatureNode[];
}

function isSignatureTree(v: unknown): v is SignatureNode[] {
  return (
    Array.isArray(v) &&
    v.every((n) => typeof n === 'object' && n !== null && typeof (n as SignatureNode).type === 'string')
  );
}

/** The signature string of a parsed signature tree ("a{sv}"). */
export function signatureOf(tree: SignatureNode[]): string {
  return tree
    .map((n) => {
      const inner = signatureOf(n.child);
      if (n.type === '(') return `(${inner})`;
      if (n.type === '{') return `{${inner}}`;
      return n.type + inner;
    })
    .join('');
}

/** An incoming variant: its signature and its value (nested variants left as they are). */
export function readVariant(v: unknown): { signature: string; value: unknown } | undefined {
  if (!Array.isArray(v) || v.length !== 2) return undefined;
  const [tree, holder] = v as [unknown, unknown];
  if (!isSignatureTree(tree) || !Array.isArray(holder)) return undefined;
  return { signature: signatureOf(tree), value: holder[0] };
}

/**
 * Plain data from an incoming value of a known signature: variants unwrapped (recursively) and
 * `a{sv}`-style dictionaries as objects. For tests and for reading replies.
 */
export function plain(v: unknown): unknown {
  const inner = readVariant(v);
  if (inner) return plain(inner.value);
  if (!Array.isArray(v)) return v;
  if (v.every((e) => Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && readVariant(e[1]))) {
    return Object.fromEntries(v.map((e) => [e[0], plain(e[1])]));
  }
  return v.map(plain);
}
