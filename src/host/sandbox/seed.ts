import { chmodSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoworkError } from '../errors.js';
import { subjectHash } from './cert-hash.js';

export interface SeedInput {
  hostPrivateKey: string;
  clientPublicKey: string;
  agentUid: number;
  agentGid: number;
  hostname: string;
  /** The guest NIC's static address with prefix, as the driver's network gives it (none: no NIC). */
  guestCidr?: string;
  proxy?: { url: string };
  /**
   * CA certificates (PEM, one per entry) the guest adds to its trust stores at boot: the
   * sandbox's egress CA and the host's added CAs. Certificates only — never a key.
   */
  trust?: readonly string[];
}

const CIDR_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

function checkCidr(cidr: string): void {
  const m = CIDR_RE.exec(cidr);
  const octets = m ? m.slice(1, 5).map(Number) : [];
  if (!m || octets.some((o) => o > 255) || Number(m[5]) < 1 || Number(m[5]) > 32) {
    throw new CoworkError(
      'invalidArgument',
      `guest address ${JSON.stringify(cidr)} is not an IPv4 address with a prefix (a.b.c.d/1-32) — the VM driver gave a bad network`,
    );
  }
}

/**
 * Who the guest's `agent` user is: the workspace owner's uid/gid, so files the guest writes are
 * owned by that user on the host. A root-owned workspace (CI, `sudo`) maps to 1000: the agent
 * is never root.
 */
export function agentIds(workspace: string): { uid: number; gid: number } {
  const st = statSync(workspace);
  return st.uid === 0 ? { uid: 1000, gid: 1000 } : { uid: st.uid, gid: st.gid };
}

/** Writes the read-only seed share (see docs/guest-contract.md) fresh for one boot. */
export function writeSeed(dir: string, input: SeedInput): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, 'ssh_host_ed25519_key'), ensureNl(input.hostPrivateKey), { mode: 0o600 });
  writeFileSync(join(dir, 'authorized_keys'), ensureNl(input.clientPublicKey), { mode: 0o644 });
  const env: Record<string, string> = {
    AGENT_UID: String(input.agentUid),
    AGENT_GID: String(input.agentGid),
    HOSTNAME: input.hostname.replace(/[^a-zA-Z0-9-]/g, '-').slice(0, 63) || 'cowork',
  };
  if (input.guestCidr !== undefined) {
    checkCidr(input.guestCidr);
    env.GUEST_ADDRESS = input.guestCidr;
  }
  if (input.proxy) {
    env.HTTP_PROXY = input.proxy.url;
    env.HTTPS_PROXY = input.proxy.url;
    env.NO_PROXY = 'localhost,127.0.0.1,::1';
  }
  writeTrust(dir, input.trust ?? []);
  const lines = Object.entries(env).map(([k, v]) => `${k}='${v.replace(/'/g, '')}'`);
  writeFileSync(join(dir, 'guest.env'), `${lines.join('\n')}\n`, { mode: 0o644 });
  chmodSync(dir, 0o700);
}

const PEM_CERT = /^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?$/;

/**
 * `trust/NN.crt`, one certificate each; anything but a lone PEM certificate is refused. Plus
 * `trust/hashes`: "NN.crt HASH" per line, each CA's OpenSSL subject hash, so the guest links it
 * into /etc/ssl/certs without starting openssl per CA.
 */
function writeTrust(dir: string, pems: readonly string[]): void {
  if (pems.length === 0) return;
  mkdirSync(join(dir, 'trust'), { mode: 0o755 });
  const hashes: string[] = [];
  pems.forEach((pem, i) => {
    const text = ensureNl(pem.replace(/\r\n/g, '\n').trim());
    if (!PEM_CERT.test(text)) {
      throw new CoworkError(
        'invalidArgument',
        `trusted CA #${i + 1} for the guest is not a single PEM certificate (a key or other data never goes into the guest)`,
      );
    }
    const name = `${String(i).padStart(2, '0')}.crt`;
    writeFileSync(join(dir, 'trust', name), text, { mode: 0o644 });
    // A name our DER reader cannot canonicalise gets no line: the guest asks openssl for it.
    try {
      hashes.push(`${name} ${subjectHash(text)}\n`);
    } catch {}
  });
  writeFileSync(join(dir, 'trust', 'hashes'), hashes.join(''), { mode: 0o644 });
}

function ensureNl(s: string): string {
  return s.endsWith('\n') ? s : `${s}\n`;
}
