import { formatIp, type IpBytes, parseIPv4Loose, parseIPv6 } from './ip-address.js';

/**
 * Host names as the proxy compares and dials them. Every host (from a request, a CONNECT
 * authority, or a config rule) goes through the WHATWG URL host parser, which lower-cases,
 * percent-decodes, applies IDNA (fullwidth digits, punycode) and rewrites every numeric IPv4
 * spelling to a dotted quad, so a rule and a request can only match on the canonical form.
 */
export type NormalizedHost =
  | { kind: 'name'; host: string }
  | { kind: 'ip'; host: string; family: 4 | 6; bytes: IpBytes };

/** Characters that would make the URL parser read something other than a host. */
const NOT_A_HOST = /[\s/\\?#@[\]<>^|"'`{}]/u;

export function normalizeHost(raw: string): NormalizedHost | null {
  if (raw === '' || raw.length > 300) return null;
  let input = raw;
  if (raw.startsWith('[') || raw.includes(':')) {
    const inner = raw.startsWith('[') && raw.endsWith(']') ? raw.slice(1, -1) : raw;
    const v6 = parseIPv6(inner);
    if (!v6) return null;
    input = `[${inner}]`;
  } else if (NOT_A_HOST.test(raw) || /[\u0000-\u001f\u007f]/u.test(raw)) {
    return null;
  }
  let hostname: string;
  try {
    hostname = new URL(`http://${input}/`).hostname;
  } catch {
    return null;
  }
  if (hostname.startsWith('[')) {
    const bytes = parseIPv6(hostname);
    return bytes ? { kind: 'ip', host: formatIp(bytes), family: 6, bytes } : null;
  }
  if (hostname.endsWith('.')) hostname = hostname.slice(0, -1);
  if (hostname === '' || hostname.length > 253 || hostname.includes('..') || hostname.startsWith('.'))
    return null;
  // The URL parser already turned numeric hosts into dotted quads; parse again so that nothing
  // that inet_aton would read as an address is ever treated as a name.
  const v4 = parseIPv4Loose(hostname);
  if (v4) return { kind: 'ip', host: formatIp(v4), family: 4, bytes: v4 };
  if (/^[0-9.]+$/.test(hostname) || /^0x/i.test(hostname.split('.').at(-1) ?? '')) return null;
  return { kind: 'name', host: hostname };
}

export interface HostPort {
  host: NormalizedHost;
  port: number;
}

export function parsePort(text: string): number | null {
  if (!/^[0-9]{1,5}$/.test(text)) return null;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : null;
}

/**
 * Splits `host:port` / `[v6]:port`. With `defaultPort` the port may be absent (config rules
 * and CONNECT never use a default: CONNECT authorities MUST carry a port).
 */
export function splitHostPort(
  text: string,
  defaultPort?: number,
): { host: string; port: number | undefined } | null {
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return null;
    const host = text.slice(0, close + 1);
    const rest = text.slice(close + 1);
    if (rest === '') return { host, port: defaultPort };
    if (!rest.startsWith(':')) return null;
    const port = parsePort(rest.slice(1));
    return port === null ? null : { host, port };
  }
  const colons = text.split(':').length - 1;
  if (colons === 0) return { host: text, port: defaultPort };
  if (colons > 1) return parseIPv6(text) ? { host: text, port: defaultPort } : null; // bare IPv6, no port
  const idx = text.indexOf(':');
  const port = parsePort(text.slice(idx + 1));
  return port === null ? null : { host: text.slice(0, idx), port };
}

/** Parses a CONNECT request target (`host:port`, port required). */
export function parseConnectAuthority(target: string): HostPort | null {
  const split = splitHostPort(target);
  if (!split || split.port === undefined) return null;
  const host = normalizeHost(split.host);
  return host ? { host, port: split.port } : null;
}

/** Display form of a host with a port, IPv6 bracketed. */
export function hostPortText(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
