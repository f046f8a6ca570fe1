import {
  createHash,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
  X509Certificate,
} from 'node:crypto';
import tls from 'node:tls';
import { CoworkError } from '../errors.js';
import { bits, bool, explicit, octets, oid, seq, set, smallInt, time, tlv, uint, utf8 } from './der.js';

/**
 * The per-sandbox certificate authority the egress proxy terminates the guest's TLS with, for
 * hosts that have a credential rule only. Its key is generated in this process, held in a
 * private field and never written anywhere: the guest gets the certificate (to trust), never
 * the key. A new CA per proxy, so a guest's trust in it ends with the sandbox.
 */
export class SandboxCA {
  readonly #key: KeyObject;
  readonly #name: Buffer;
  readonly #keyId: Buffer;
  readonly #contexts = new Map<string, tls.SecureContext>();
  /** The CA certificate (PEM) that goes into the guest's trust stores. */
  readonly certPem: string;

  private constructor(label: string) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.#key = privateKey;
    const spki = publicKey.export({ type: 'spki', format: 'der' });
    this.#keyId = keyId(spki);
    this.#name = name(`cowork-vm sandbox egress CA ${label}`);
    const now = Date.now();
    const der = certificate(
      {
        issuer: this.#name,
        subject: this.#name,
        notBefore: new Date(now - HOUR),
        notAfter: new Date(now + 90 * DAY),
        spki,
        extensions: [
          extension('2.5.29.19', true, seq(bool(true), smallInt(0))), // CA, no intermediates
          extension('2.5.29.15', true, bits(Buffer.from([0x06]), 1)), // keyCertSign, cRLSign
          extension('2.5.29.14', false, octets(this.#keyId)),
        ],
      },
      this.#key,
    );
    this.certPem = pem(der);
  }

  static create(label: string = randomBytes(4).toString('hex')): SandboxCA {
    return new SandboxCA(label);
  }

  /** A leaf certificate and key for `host` (a DNS name), signed by this CA. */
  issue(host: string): { certPem: string; keyPem: string } {
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(host)) {
      throw new CoworkError(
        'invalidArgument',
        `the sandbox CA issues certificates for host names only, not ${JSON.stringify(host)}`,
      );
    }
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const spki = publicKey.export({ type: 'spki', format: 'der' });
    const now = Date.now();
    const der = certificate(
      {
        issuer: this.#name,
        subject: name(host),
        notBefore: new Date(now - HOUR),
        notAfter: new Date(now + 30 * DAY),
        spki,
        extensions: [
          extension('2.5.29.19', true, seq()), // not a CA
          extension('2.5.29.15', true, bits(Buffer.from([0x80]), 7)), // digitalSignature
          extension('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1'))), // serverAuth
          extension('2.5.29.17', false, seq(tlv(0x82, Buffer.from(host, 'ascii')))), // dNSName
          extension('2.5.29.14', false, octets(keyId(spki))),
          extension('2.5.29.35', false, seq(tlv(0x80, this.#keyId))),
        ],
      },
      this.#key,
    );
    return { certPem: pem(der), keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
  }

  /** The TLS server context the proxy presents to the guest for `host` (issued once, then kept). */
  contextFor(host: string): tls.SecureContext {
    let ctx = this.#contexts.get(host);
    if (!ctx) {
      const leaf = this.issue(host);
      ctx = tls.createSecureContext({ key: leaf.keyPem, cert: `${leaf.certPem}${this.certPem}` });
      this.#contexts.set(host, ctx);
    }
    return ctx;
  }

  /** True when `certPem` was issued by this CA (its signature verifies with the CA's key). */
  issued(certPem: string): boolean {
    return new X509Certificate(certPem).verify(new X509Certificate(this.certPem).publicKey);
  }
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));

interface CertFields {
  issuer: Buffer;
  subject: Buffer;
  notBefore: Date;
  notAfter: Date;
  spki: Buffer;
  extensions: Buffer[];
}

function certificate(f: CertFields, signingKey: KeyObject): Buffer {
  const serial = randomBytes(16);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x40; // positive, 16 bytes
  const tbs = seq(
    explicit(0, smallInt(2)), // v3
    uint(serial),
    ECDSA_SHA256,
    f.issuer,
    seq(time(f.notBefore), time(f.notAfter)),
    f.subject,
    f.spki,
    explicit(3, seq(...f.extensions)),
  );
  return seq(tbs, ECDSA_SHA256, bits(sign('sha256', tbs, signingKey)));
}

function name(commonName: string): Buffer {
  return seq(set(seq(oid('2.5.4.10'), utf8('cowork-vm'))), set(seq(oid('2.5.4.3'), utf8(commonName))));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), bool(true), octets(value)) : seq(oid(id), octets(value));
}

function keyId(spki: Buffer): Buffer {
  return createHash('sha256').update(spki).digest().subarray(0, 20);
}

function pem(der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN CERTIFICATE-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END CERTIFICATE-----\n`;
}
