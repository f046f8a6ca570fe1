/**
 * Hop-by-hop header handling (RFC 9110 §7.6.1): these describe one connection, not the
 * message, so a proxy MUST NOT pass them on. Proxy-Authorization is additionally never
 * forwarded so that nothing the guest sends to the proxy reaches a remote site.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Filters a raw header list ([name, value, name, value, ...]); also drops names listed in Connection. */
export function endToEndHeaders(
  raw: readonly string[],
  alsoDrop: readonly string[] = [],
): [string, string][] {
  const drop = new Set([...HOP_BY_HOP, ...alsoDrop]);
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]?.toLowerCase() === 'connection') {
      for (const token of (raw[i + 1] ?? '').split(',')) {
        const t = token.trim().toLowerCase();
        if (t) drop.add(t);
      }
    }
  }
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    if (!drop.has(name.toLowerCase())) out.push([name, raw[i + 1] as string]);
  }
  return out;
}

/** Groups pairs into the object form http.request accepts; repeated names become arrays. */
export function headerObject(pairs: [string, string][]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of pairs) {
    const key = name.toLowerCase();
    const prev = out[key];
    if (prev === undefined) out[key] = value;
    else out[key] = Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return out;
}
