import { createHash, X509Certificate } from 'node:crypto';

/**
 * OpenSSL's subject name hash (`openssl x509 -hash`, X509_NAME_hash since OpenSSL 1.0): the name
 * under which a CA is looked up in a CApath folder (`/etc/ssl/certs/<hash>.<n>`). Computed on the
 * host so the guest does not start `openssl` once per CA at boot (~350 ms each under TCG).
 *
 * The hash is the first four bytes, little-endian, of SHA-1 over the subject's canonical
 * encoding: each relative distinguished name as a DER SET of its attributes, concatenated
 * without the outer SEQUENCE, where every string of a "canonical" type is re-encoded as a
 * UTF8String, its leading and trailing whitespace dropped, inner runs of whitespace made one
 * space and ASCII letters lowercased (OpenSSL's x509_name_canon and asn1_string_canon).
 */
export function subjectHash(pem: string): string {
  const der = new X509Certificate(pem).raw;
  const subject = subjectName(der);
  const canon = Buffer.concat(children(subject).map(canonicalRdn));
  const md = createHash('sha1').update(canon).digest();
  return md.readUInt32LE(0).toString(16).padStart(8, '0');
}

interface Tlv {
  tag: number;
  /** The whole element (tag, length, content). */
  all: Buffer;
  content: Buffer;
}

function readTlv(buf: Buffer, at: number): Tlv {
  const tag = buf[at];
  let len = buf[at + 1];
  if (tag === undefined || len === undefined) throw new Error('truncated DER');
  let head = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new Error('unsupported DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[at + 2 + i] ?? Number.NaN);
    head += n;
  }
  const end = at + head + len;
  if (!Number.isFinite(len) || end > buf.length) throw new Error('truncated DER');
  return { tag, all: buf.subarray(at, end), content: buf.subarray(at + head, end) };
}

function children(t: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = 0; at < t.content.length; ) {
    const c = readTlv(t.content, at);
    out.push(c);
    at += c.all.length;
  }
  return out;
}

/** tbsCertificate: [0] version?, serialNumber, signature, issuer, validity, subject, … */
function subjectName(der: Buffer): Tlv {
  const tbs = children(readTlv(der, 0))[0];
  if (!tbs) throw new Error('no tbsCertificate');
  const fields = children(tbs);
  const skip = fields[0]?.tag === 0xa0 ? 1 : 0;
  const subject = fields[skip + 4];
  if (subject?.tag !== 0x30) throw new Error('no subject name');
  return subject;
}

function encode(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let len: Buffer;
  if (n < 0x80) len = Buffer.from([n]);
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    len = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), len, content]);
}

/** DER orders a SET OF by its members' encodings (OpenSSL's der_cmp: bytes, then length). */
function derSetOf(members: Buffer[]): Buffer {
  const sorted = [...members].sort((a, b) => {
    const c = Buffer.compare(
      a.subarray(0, Math.min(a.length, b.length)),
      b.subarray(0, Math.min(a.length, b.length)),
    );
    return c !== 0 ? c : a.length - b.length;
  });
  return encode(0x31, Buffer.concat(sorted));
}

function canonicalRdn(rdn: Tlv): Buffer {
  return derSetOf(
    children(rdn).map((atv) => {
      const [type, value] = children(atv);
      if (!type || !value) throw new Error('malformed attribute');
      return encode(0x30, Buffer.concat([type.all, canonicalValue(value)]));
    }),
  );
}

// UTF8String 12, PrintableString 19, T61String 20, IA5String 22, VisibleString 26,
// UniversalString 28, BMPString 30: OpenSSL's ASN1_MASK_CANON.
const CANON_TAGS = new Set([12, 19, 20, 22, 26, 28, 30]);

function canonicalValue(v: Tlv): Buffer {
  if (!CANON_TAGS.has(v.tag)) return v.all;
  const utf8 = Buffer.from(decodeString(v.tag, v.content), 'utf8');
  const isSpace = (b: number | undefined) => b === 0x20 || (b !== undefined && b >= 0x09 && b <= 0x0d);
  let from = 0;
  let to = utf8.length;
  while (from < to && isSpace(utf8[from])) from++;
  while (to > from && isSpace(utf8[to - 1])) to--;
  const out: number[] = [];
  for (let i = from; i < to; ) {
    const b = utf8[i] as number;
    if (b >= 0x80) {
      out.push(b);
      i++;
    } else if (isSpace(b)) {
      out.push(0x20);
      while (i < to && isSpace(utf8[i])) i++;
    } else {
      out.push(b >= 0x41 && b <= 0x5a ? b + 0x20 : b);
      i++;
    }
  }
  return encode(12, Buffer.from(out));
}

function decodeString(tag: number, bytes: Buffer): string {
  if (tag === 12) return bytes.toString('utf8');
  if (tag === 30) {
    let s = '';
    for (let i = 0; i + 1 < bytes.length; i += 2) s += String.fromCharCode(bytes.readUInt16BE(i));
    return s;
  }
  if (tag === 28) {
    let s = '';
    for (let i = 0; i + 3 < bytes.length; i += 4) s += String.fromCodePoint(bytes.readUInt32BE(i));
    return s;
  }
  // PrintableString, T61String (read as Latin-1, as OpenSSL does), IA5String, VisibleString.
  return bytes.toString('latin1');
}
