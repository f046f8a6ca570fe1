import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoworkError } from '../errors.js';

/**
 * macOS: the CAs an administrator trusts, as the host's TLS clients see them. Those are the
 * certificates of the System keychain that carry admin-domain trust settings (what "Always
 * Trust" in Keychain Access, an MDM profile or `security add-trusted-cert -d` records), read
 * with Apple's `security` tool:
 *   security trust-settings-export -d FILE   → the admin domain's trust settings (XML plist),
 *                                               keyed by each certificate's SHA-1
 *   security find-certificate -a -p KEYCHAIN  → every certificate of the keychain (PEM)
 * A certificate counts when its settings are empty (trusted for everything) or one of them
 * says trust-as-root (kSecTrustSettingsResult 1 or 2, or no result: 1 is the default); one that
 * denies it (3) excludes it. Never run on Linux; tests drive it with a stand-in `security`.
 */

export const SYSTEM_KEYCHAIN = '/Library/Keychains/System.keychain';
/** Test-only: another `security` program, honoured only with COWORK_VM_TEST_RESOLVE=1. */
export const TEST_SECURITY_BIN_ENV = 'COWORK_VM_TEST_SECURITY_BIN';

export function securityBinary(env: NodeJS.ProcessEnv): string {
  const test = env[TEST_SECURITY_BIN_ENV];
  if (test === undefined) return '/usr/bin/security';
  if (env.COWORK_VM_TEST_RESOLVE !== '1') {
    throw new CoworkError(
      'invalidArgument',
      `${TEST_SECURITY_BIN_ENV} is only for tests and is honoured only with COWORK_VM_TEST_RESOLVE=1; unset it`,
    );
  }
  return test;
}

/**
 * The admin domain's trusted SHA-1s and the System keychain's certificates (PEM text, split and
 * checked by guest-trust.ts like every other source); a `security` failure is an error naming it.
 */
export function macAdminTrust(env: NodeJS.ProcessEnv = process.env): {
  trusted: Set<string>;
  keychainPems: string;
} {
  const bin = securityBinary(env);
  const dir = mkdtempSync(join(tmpdir(), 'cowork-trust-'));
  try {
    const file = join(dir, 'admin-trust.plist');
    let plist: string;
    try {
      execFileSync(bin, ['trust-settings-export', '-d', file], { stdio: ['ignore', 'ignore', 'pipe'] });
      plist = readFileSync(file, 'utf8');
    } catch (err) {
      const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim();
      // No admin trust settings at all is not an error: nothing was added.
      if (/no trust settings/i.test(stderr)) return { trusted: new Set(), keychainPems: '' };
      throw new CoworkError(
        'unavailable',
        `cannot read the admin trust settings (${bin} trust-settings-export -d): ${stderr || (err as Error).message}`,
        err,
      );
    }
    const trusted = adminTrustedSha1s(plist);
    if (trusted.size === 0) return { trusted, keychainPems: '' };
    try {
      const keychainPems = execFileSync(bin, ['find-certificate', '-a', '-p', SYSTEM_KEYCHAIN], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        maxBuffer: 64 * 1024 * 1024,
      });
      return { trusted, keychainPems };
    } catch (err) {
      throw new CoworkError(
        'unavailable',
        `cannot list the certificates of ${SYSTEM_KEYCHAIN} (${bin} find-certificate): ${(err as Error).message}`,
        err,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A certificate's SHA-1 as the trust settings key it (upper-case hex); undefined when it does not parse. */
export function certSha1(pem: string): string | undefined {
  try {
    return new X509Certificate(pem).fingerprint.replace(/:/g, '').toUpperCase();
  } catch {
    return undefined;
  }
}

/** SHA-1s (upper-case hex) of the certificates the exported trust settings trust as a root. */
export function adminTrustedSha1s(plistXml: string): Set<string> {
  const root = parsePlist(plistXml);
  const list = isDict(root) ? root.trustList : undefined;
  const out = new Set<string>();
  if (!isDict(list)) return out;
  for (const [sha1, entry] of Object.entries(list)) {
    if (!/^[0-9A-Fa-f]{40}$/.test(sha1) || !isDict(entry)) continue;
    const settings = entry.trustSettings;
    // Absent or empty: trusted for every purpose, as a root.
    if (settings === undefined || (Array.isArray(settings) && settings.length === 0)) {
      out.add(sha1.toUpperCase());
      continue;
    }
    if (!Array.isArray(settings)) continue;
    const results = settings.map((s) => (isDict(s) ? (s.kSecTrustSettingsResult ?? 1) : undefined));
    if (results.includes(3)) continue; // deny wins
    if (results.some((r) => r === 1 || r === 2)) out.add(sha1.toUpperCase());
  }
  return out;
}

type Plist = string | number | boolean | Plist[] | { [key: string]: Plist };

function isDict(v: Plist | undefined): v is { [key: string]: Plist } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A small XML plist reader: dict, array, key, string, data, date, integer, real, true, false. */
export function parsePlist(xml: string): Plist | undefined {
  const tokens = [
    ...xml.matchAll(/<(\/?)(dict|array|key|string|data|date|integer|real|true|false)(\s*\/)?>/g),
  ];
  let i = 0;
  const textAfter = (t: RegExpMatchArray, name: string): string => {
    const start = (t.index ?? 0) + t[0].length;
    const end = xml.indexOf(`</${name}>`, start);
    if (end < 0) throw new Error(`plist: <${name}> is not closed`);
    return xml.slice(start, end);
  };
  const value = (): Plist => {
    const t = tokens[i++];
    if (!t || t[1] === '/') throw new Error('plist: unexpected end');
    const name = t[2] as string;
    const selfClosing = Boolean(t[3]);
    switch (name) {
      case 'true':
      case 'false':
        if (!selfClosing) i++; // <true></true>
        return name === 'true';
      case 'dict': {
        const d: { [key: string]: Plist } = {};
        if (selfClosing) return d;
        while (tokens[i] && !(tokens[i]?.[1] === '/' && tokens[i]?.[2] === 'dict')) {
          const k = tokens[i++];
          if (k?.[2] !== 'key') throw new Error('plist: a dict entry without a key');
          const key = unescapeXml(textAfter(k, 'key'));
          i++; // </key>
          d[key] = value();
        }
        i++; // </dict>
        return d;
      }
      case 'array': {
        const a: Plist[] = [];
        if (selfClosing) return a;
        while (tokens[i] && !(tokens[i]?.[1] === '/' && tokens[i]?.[2] === 'array')) a.push(value());
        i++; // </array>
        return a;
      }
      default: {
        if (selfClosing) return '';
        const text = unescapeXml(textAfter(t, name));
        i++; // closing tag
        return name === 'integer' || name === 'real' ? Number(text.trim()) : text;
      }
    }
  };
  return tokens.length ? value() : undefined;
}

function unescapeXml(s: string): string {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}
