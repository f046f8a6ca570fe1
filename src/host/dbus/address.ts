import { CoworkError } from '../errors.js';

/*
 * A D-Bus server address ("unix:path=/run/user/1000/bus,guid=…", "unix:abstract=/tmp/dbus-x",
 * several separated by ';') → the socket to dial. Only Unix sockets: a session bus is local,
 * and a TCP address would carry the EXTERNAL handshake to whoever answers on that port.
 */

export function parseBusAddress(address: string): string {
  const reasons: string[] = [];
  for (const entry of address.split(';')) {
    if (!entry) continue;
    const colon = entry.indexOf(':');
    const transport = colon < 0 ? entry : entry.slice(0, colon);
    const params = new Map<string, string>();
    for (const kv of (colon < 0 ? '' : entry.slice(colon + 1)).split(',')) {
      const eq = kv.indexOf('=');
      if (eq > 0) params.set(kv.slice(0, eq), unescapeValue(kv.slice(eq + 1)));
    }
    if (transport !== 'unix') {
      reasons.push(`transport '${transport}' is not supported (only unix)`);
      continue;
    }
    const path = params.get('path');
    if (path) return path;
    const abstract = params.get('abstract');
    // Linux abstract sockets: Node dials them with a leading NUL byte.
    if (abstract && process.platform === 'linux') return `\0${abstract}`;
    reasons.push('a unix address needs path= (or abstract= on Linux)');
  }
  throw new CoworkError(
    'unavailable',
    `cannot use the D-Bus address '${address}': ${reasons.join('; ') || 'it is empty'}`,
  );
}

/** D-Bus addresses escape bytes as %XX. */
function unescapeValue(v: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}
