import { X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { GuestConfig } from '../config/schema.js';
import { CoworkError } from '../errors.js';
import { certSha1, macAdminTrust, SYSTEM_KEYCHAIN } from './mac-trust.js';

/**
 * What the guest trusts besides Debian's roots: the sandbox's egress CA (when there are
 * credential rules), the CAs the host's administrator added (a company's TLS-inspecting CA is
 * the usual one: without it every HTTPS client in the guest fails where the host works) and
 * `[guest] extraCAs`. Certificates only; they reach the guest through the seed's `trust/`.
 */

/** Where Debian/Ubuntu keep locally added CAs (what update-ca-certificates installs). */
export const HOST_ADDED_CA_DIR = '/usr/local/share/ca-certificates';

/** Test-only: another added-certificates folder, honoured only with COWORK_VM_TEST_RESOLVE=1. */
export const TEST_HOST_CA_DIR_ENV = 'COWORK_VM_TEST_HOST_CA_DIR';

export interface TrustedCa {
  /** 'sandbox egress CA', 'host', or 'extraCAs'. */
  source: 'sandbox' | 'host' | 'extra';
  file?: string;
  subject: string;
  pem: string;
}

export interface GuestTrust {
  cas: TrustedCa[];
  /** The added-certificates folder that was read (or would have been). */
  hostDir: string;
  /** Files skipped, with why (not a certificate, not a CA). */
  skipped: string[];
}

export function hostCaDir(env: NodeJS.ProcessEnv = process.env): string {
  const test = env[TEST_HOST_CA_DIR_ENV];
  if (test !== undefined) {
    if (env.COWORK_VM_TEST_RESOLVE !== '1') {
      throw new CoworkError(
        'invalidArgument',
        `${TEST_HOST_CA_DIR_ENV} is only for tests and is honoured only with COWORK_VM_TEST_RESOLVE=1; unset it`,
      );
    }
    return test;
  }
  return HOST_ADDED_CA_DIR;
}

/** The PEM certificates in one text, each checked to parse. */
export function pemCertificates(text: string): string[] {
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map(
    (m) => `${m[0]}\n`,
  );
}

/** `*.crt` under `dir` (any depth), as update-ca-certificates reads them; CA certificates only. */
export function hostAddedCas(dir: string): { cas: TrustedCa[]; skipped: string[] } {
  const cas: TrustedCa[] = [];
  const skipped: string[] = [];
  if (!existsSync(dir)) return { cas, skipped };
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.crt'))
    .sort();
  for (const rel of files) {
    const file = join(dir, rel);
    if (!statSync(file, { throwIfNoEntry: false })?.isFile()) continue;
    const found = checkedCas(readFileSync(file, 'utf8'), 'host', file);
    if (found.length === 0) skipped.push(`${file}: no CA certificate in it`);
    cas.push(...found);
  }
  return { cas, skipped };
}

/** A Mac's admin-trusted CAs (mac-trust.ts); CA certificates only, like the folder's. */
function macAddedCas(env: NodeJS.ProcessEnv): { cas: TrustedCa[]; skipped: string[] } {
  const cas: TrustedCa[] = [];
  const skipped: string[] = [];
  const { trusted, keychainPems } = macAdminTrust(env);
  for (const pem of pemCertificates(keychainPems)) {
    const sha1 = certSha1(pem);
    if (sha1 === undefined || !trusted.has(sha1)) continue;
    const found = checkedCas(pem, 'host', SYSTEM_KEYCHAIN);
    if (found.length === 0) skipped.push(`${SYSTEM_KEYCHAIN}: an admin-trusted certificate that is not a CA`);
    cas.push(...found);
  }
  return { cas, skipped };
}

function checkedCas(text: string, source: TrustedCa['source'], file?: string): TrustedCa[] {
  const out: TrustedCa[] = [];
  for (const pem of pemCertificates(text)) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(pem);
    } catch {
      continue;
    }
    if (cert.ca)
      out.push({ source, ...(file ? { file } : {}), subject: cert.subject.replace(/\n/g, ', '), pem });
  }
  return out;
}

/**
 * Everything the guest is to trust for one boot. An `extraCAs` file that is missing or holds
 * no CA certificate is an error naming the key and the file (fail closed: a start that would
 * quietly not trust what the user asked for is refused).
 */
export function guestTrust(opts: {
  guest: GuestConfig;
  sandboxCaPem?: string;
  env?: NodeJS.ProcessEnv;
  /** Whose added CAs to read: a Mac's System keychain, or Debian's added-certificates folder. */
  platform?: NodeJS.Platform;
}): GuestTrust {
  const env = opts.env ?? process.env;
  const cas: TrustedCa[] = [];
  if (opts.sandboxCaPem) cas.push(...checkedCas(opts.sandboxCaPem, 'sandbox'));
  const mac = (opts.platform ?? process.platform) === 'darwin';
  const hostDir = mac ? `${SYSTEM_KEYCHAIN} (admin trust settings)` : hostCaDir(env);
  const skipped: string[] = [];
  if (opts.guest.trustHostCAs) {
    const host = mac ? macAddedCas(env) : hostAddedCas(hostDir);
    cas.push(...host.cas);
    skipped.push(...host.skipped);
  }
  opts.guest.extraCAs.forEach((entry, i) => {
    const file = entry.startsWith('~/') ? join(env.HOME ?? homedir(), entry.slice(2)) : entry;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new CoworkError(
        'invalidArgument',
        `guest.extraCAs[${i}] = ${JSON.stringify(entry)}: cannot read it (${(err as Error).message})`,
      );
    }
    const found = checkedCas(text, 'extra', file);
    if (found.length === 0) {
      throw new CoworkError(
        'invalidArgument',
        `guest.extraCAs[${i}] = ${JSON.stringify(entry)} holds no PEM CA certificate`,
      );
    }
    cas.push(...found);
  });
  return { cas, hostDir, skipped };
}
