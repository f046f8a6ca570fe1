/**
 * IP address parsing and classification for the SSRF guard. Pure code, no I/O.
 *
 * Every address is reduced to bytes (4 for IPv4, 16 for IPv6) before it is classified, so a
 * spelling trick (decimal `2130706433`, octal `0177.0.0.1`, hex `0x7f.1`, short `127.1`,
 * IPv4-mapped `::ffff:7f00:1`, NAT64 `64:ff9b::a00:1`, 6to4 `2002:7f00:1::`) cannot hide
 * what the proxy would actually dial.
 */

export type IpBytes = Uint8Array;

export interface ParsedIp {
  family: 4 | 6;
  bytes: IpBytes;
  /** Canonical text: dotted quad, or RFC 5952 compressed IPv6 without brackets. */
  text: string;
}

/**
 * IPv4 the way inet_aton(3) and the WHATWG URL host parser read it: 1-4 parts, each decimal,
 * octal (leading 0) or hex (0x); the last part fills the remaining bytes. One trailing dot is
 * tolerated. Returns null when the text is not such a number.
 */
export function parseIPv4Loose(input: string): IpBytes | null {
  let s = input;
  if (s.endsWith('.')) s = s.slice(0, -1);
  if (s === '') return null;
  const parts = s.split('.');
  if (parts.length > 4) return null;
  const nums: number[] = [];
  for (const part of parts) {
    const n = parseIPv4Part(part);
    if (n === null) return null;
    nums.push(n);
  }
  const last = nums.pop() as number;
  for (const n of nums) if (n > 255) return null;
  if (last >= 256 ** (4 - nums.length)) return null;
  const bytes = new Uint8Array(4);
  nums.forEach((n, i) => {
    bytes[i] = n;
  });
  let rest = last;
  for (let i = 3; i >= nums.length; i--) {
    bytes[i] = rest % 256;
    rest = Math.floor(rest / 256);
  }
  return bytes;
}

function parseIPv4Part(part: string): number | null {
  if (part === '') return null;
  let digits = part;
  let radix = 10;
  if (/^0[xX]/.test(part)) {
    digits = part.slice(2);
    radix = 16;
    if (digits === '') return 0; // "0x" is 0 for both inet_aton and WHATWG
    if (!/^[0-9a-fA-F]+$/.test(digits)) return null;
  } else if (part.length > 1 && part.startsWith('0')) {
    digits = part.slice(1);
    radix = 8;
    if (!/^[0-7]+$/.test(digits)) return null;
  } else if (!/^[0-9]+$/.test(digits)) {
    return null;
  }
  const n = Number.parseInt(digits, radix);
  return Number.isSafeInteger(n) && n <= 0xffffffff ? n : null;
}

/** Strict IPv6 text (optionally bracketed, with an embedded dotted IPv4 tail). Zone ids are refused. */
export function parseIPv6(input: string): IpBytes | null {
  let s = input;
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  if (s === '' || s.includes('%') || !/^[0-9a-fA-F:.]+$/.test(s)) return null;
  const words: number[] = [];
  let tail = s;
  const lastColon = s.lastIndexOf(':');
  const ipv4Tail = lastColon >= 0 && s.slice(lastColon + 1).includes('.') ? s.slice(lastColon + 1) : null;
  if (ipv4Tail !== null) {
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(ipv4Tail)) return null;
    const octets = ipv4Tail.split('.').map(Number);
    if (octets.some((o) => o > 255)) return null;
    tail = s.slice(0, lastColon + 1) + '0:0'; // two placeholder words, filled from the tail below
  }
  const halves = tail.split('::');
  if (halves.length > 2) return null;
  const parseWords = (h: string): number[] | null => {
    if (h === '') return [];
    const out: number[] = [];
    for (const w of h.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(w)) return null;
      out.push(Number.parseInt(w, 16));
    }
    return out;
  };
  const head = parseWords(halves[0] ?? '');
  const rest = halves.length === 2 ? parseWords(halves[1] ?? '') : [];
  if (head === null || rest === null) return null;
  if (halves.length === 2) {
    const missing = 8 - head.length - rest.length;
    if (missing < 1) return null;
    words.push(...head, ...new Array<number>(missing).fill(0), ...rest);
  } else {
    if (head.length !== 8) return null;
    words.push(...head);
  }
  const bytes = new Uint8Array(16);
  words.forEach((w, i) => {
    bytes[i * 2] = w >> 8;
    bytes[i * 2 + 1] = w & 0xff;
  });
  if (ipv4Tail !== null) {
    ipv4Tail.split('.').forEach((o, i) => {
      bytes[12 + i] = Number(o);
    });
  }
  return bytes;
}

export function formatIp(bytes: IpBytes): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  // RFC 5952: compress the longest run (length >= 2) of zero words, the first one on a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Parses a literal address as the resolver or the URL parser would return it. */
export function parseIp(text: string): ParsedIp | null {
  const v6 = text.includes(':') ? parseIPv6(text) : null;
  if (v6) return { family: 6, bytes: v6, text: formatIp(v6) };
  if (text.includes(':')) return null;
  const v4 = parseIPv4Loose(text);
  return v4 ? { family: 4, bytes: v4, text: formatIp(v4) } : null;
}

interface Range {
  prefix: number[];
  bits: number;
  what: string;
}

const V4_BLOCKED: Range[] = [
  { prefix: [169, 254, 169, 254], bits: 32, what: 'the cloud metadata address' },
  { prefix: [255, 255, 255, 255], bits: 32, what: 'the broadcast address' },
  { prefix: [0], bits: 8, what: 'an unspecified/"this network" address (0.0.0.0/8)' },
  { prefix: [10], bits: 8, what: 'a private address (10.0.0.0/8)' },
  { prefix: [100, 64], bits: 10, what: 'a carrier-grade NAT address (100.64.0.0/10)' },
  { prefix: [127], bits: 8, what: 'a loopback address (127.0.0.0/8)' },
  { prefix: [169, 254], bits: 16, what: 'a link-local address (169.254.0.0/16)' },
  { prefix: [172, 16], bits: 12, what: 'a private address (172.16.0.0/12)' },
  { prefix: [192, 0, 0], bits: 24, what: 'an IETF protocol address (192.0.0.0/24)' },
  { prefix: [192, 168], bits: 16, what: 'a private address (192.168.0.0/16)' },
  { prefix: [198, 18], bits: 15, what: 'a benchmarking address (198.18.0.0/15)' },
  { prefix: [224], bits: 4, what: 'a multicast address (224.0.0.0/4)' },
  { prefix: [240], bits: 4, what: 'a reserved address (240.0.0.0/4)' },
];

const V6_BLOCKED: Range[] = [
  {
    prefix: [0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54],
    bits: 128,
    what: 'the cloud metadata address',
  },
  { prefix: new Array(16).fill(0), bits: 128, what: 'the unspecified address (::)' },
  { prefix: [...new Array(15).fill(0), 1], bits: 128, what: 'the loopback address (::1)' },
  { prefix: [0, 0x64, 0xff, 0x9b, 0, 1], bits: 48, what: 'a local-use NAT64 address (64:ff9b:1::/48)' },
  { prefix: [1, 0, 0, 0, 0, 0, 0, 0], bits: 64, what: 'a discard-only address (100::/64)' },
  { prefix: [0x20, 0x01, 0, 0], bits: 32, what: 'a Teredo address (2001::/32)' },
  { prefix: [0xfc], bits: 7, what: 'a unique-local address (fc00::/7)' },
  { prefix: [0xfe, 0x80], bits: 10, what: 'a link-local address (fe80::/10)' },
  { prefix: [0xfe, 0xc0], bits: 10, what: 'a site-local address (fec0::/10)' },
  { prefix: [0xff], bits: 8, what: 'a multicast address (ff00::/8)' },
];

function inRange(bytes: IpBytes, r: Range): boolean {
  let bits = r.bits;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((bytes[i] ?? 0) & mask) !== ((r.prefix[i] ?? 0) & mask)) return false;
  }
  return true;
}

function startsWith(bytes: IpBytes, prefix: number[]): boolean {
  return prefix.every((b, i) => bytes[i] === b);
}

/** How an IPv6 address carries an IPv4 address, when it does. */
export type EmbeddingForm = 'mapped' | 'compatible' | 'siit' | 'nat64' | 'nat64-local' | '6to4';

export interface EmbeddedIPv4 {
  form: EmbeddingForm;
  v4: IpBytes;
  /**
   * True when reaching the IPv6 address means reaching the IPv4 one (the kernel dials it as
   * IPv4, or a translator on the path rewrites it to it). 6to4 is not: it reaches a relay and
   * the 6to4 site behind that IPv4 router, so only deny rules look through it.
   */
  sameDestination: boolean;
}

const ZEROS10 = new Array<number>(10).fill(0);

/**
 * The IPv4 address inside an IPv6 one: mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`
 * (deprecated; `::` and `::1` excluded), SIIT `::ffff:0:a.b.c.d`, NAT64 well-known prefix
 * `64:ff9b::/96`, local-use NAT64 `64:ff9b:1::/48` (RFC 6052 layouts for /48 and /96), 6to4
 * `2002:a.b.c.d::/48`. Null for any other address (and for IPv4 bytes).
 */
export function embeddedIPv4(bytes: IpBytes): EmbeddedIPv4 | null {
  if (bytes.length !== 16) return null;
  const tail = (at: number) => bytes.slice(at, at + 4);
  if (startsWith(bytes, [...ZEROS10, 0xff, 0xff]))
    return { form: 'mapped', v4: tail(12), sameDestination: true };
  if (startsWith(bytes, [0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0]))
    return { form: 'siit', v4: tail(12), sameDestination: true };
  if (
    startsWith(bytes, [...ZEROS10, 0, 0]) &&
    !(bytes[12] === 0 && bytes[13] === 0 && bytes[14] === 0 && (bytes[15] ?? 0) <= 1)
  )
    return { form: 'compatible', v4: tail(12), sameDestination: true };
  if (startsWith(bytes, [0, 0x64, 0xff, 0x9b, ...ZEROS10.slice(0, 8)]))
    return { form: 'nat64', v4: tail(12), sameDestination: true };
  if (startsWith(bytes, [0, 0x64, 0xff, 0x9b, 0, 1])) {
    // Operators pick their own prefix length inside the /48; /96 is the common one and /48 puts
    // the address around the reserved u-octet (bits 64-71). Either is read, /96 first.
    if (startsWith(bytes.slice(6), [0, 0, 0, 0, 0, 0]))
      return { form: 'nat64-local', v4: tail(12), sameDestination: true };
    const v4 = Uint8Array.from([bytes[6] ?? 0, bytes[7] ?? 0, bytes[9] ?? 0, bytes[10] ?? 0]);
    return { form: 'nat64-local', v4, sameDestination: true };
  }
  if (startsWith(bytes, [0x20, 0x02])) return { form: '6to4', v4: tail(2), sameDestination: false };
  return null;
}

/**
 * The address a rule is matched against: the IPv4 address for an IPv6 form that reaches it
 * (mapped, compatible, SIIT, NAT64), otherwise the address itself. Canonical text.
 */
export function ruleAddress(bytes: IpBytes): string {
  const e = embeddedIPv4(bytes);
  return e?.sameDestination ? formatIp(e.v4) : formatIp(bytes);
}

/**
 * The address the proxy dials for this one: an IPv4-mapped or -compatible address is dialled as
 * its IPv4 address (the kernel would reach that anyway); every other address as it is.
 */
export function dialAddress(bytes: IpBytes): IpBytes {
  const e = embeddedIPv4(bytes);
  return e && (e.form === 'mapped' || e.form === 'compatible') ? e.v4 : bytes;
}

/**
 * Every canonical text a deny rule is checked against: the address, and the IPv4 address any
 * IPv6 form carries (6to4 included — a deny list errs towards refusing).
 */
export function denyAddresses(bytes: IpBytes): string[] {
  const own = formatIp(bytes);
  const e = embeddedIPv4(bytes);
  return e ? [own, formatIp(e.v4)] : [own];
}

/**
 * Why the proxy must not dial this address, or null when it is an ordinary public address.
 * IPv6 forms that embed an IPv4 address (mapped, compatible, SIIT, NAT64, 6to4) are judged by
 * the embedded address; the deprecated IPv4-compatible block ::/96 is refused outright.
 */
export function blockedAddressReason(bytes: IpBytes): string | null {
  if (bytes.length === 4) return V4_BLOCKED.find((r) => inRange(bytes, r))?.what ?? null;
  const direct = V6_BLOCKED.find((r) => inRange(bytes, r));
  if (direct) return direct.what;
  const zeros10 = new Array(10).fill(0);
  const embedded = (at: number): string | null => {
    const inner = blockedAddressReason(bytes.slice(at, at + 4));
    return inner ? `${inner}, embedded in an IPv6 address` : null;
  };
  if (startsWith(bytes, [...zeros10, 0xff, 0xff])) return embedded(12); // ::ffff:a.b.c.d (mapped)
  if (startsWith(bytes, [0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0])) return embedded(12); // ::ffff:0:a.b.c.d
  if (startsWith(bytes, [...zeros10, 0, 0])) return 'an IPv4-compatible IPv6 address (::/96, deprecated)';
  if (startsWith(bytes, [0, 0x64, 0xff, 0x9b, ...zeros10.slice(0, 8)])) return embedded(12); // NAT64
  if (startsWith(bytes, [0x20, 0x02])) return embedded(2); // 6to4
  return null;
}

/** Names that point at cloud metadata services, refused whatever they resolve to. */
export const METADATA_NAMES: ReadonlySet<string> = new Set([
  'metadata.google.internal',
  'metadata.goog',
  'metadata',
  'instance-data',
  'instance-data.ec2.internal',
  'metadata.azure.internal',
]);
