import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { utils } from 'ssh2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import {
  authorizedKeysLine,
  ensureSandboxKeys,
  fingerprintOf,
  generateEd25519,
  KEY_FILES,
  publicKeyLine,
  sameKey,
} from '../../src/host/ssh/keys.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cowork-keys-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const mode = (p: string) => statSync(p).mode & 0o777;

describe('ensureSandboxKeys', () => {
  it('generates two distinct ed25519 pairs, private files 0600, folder 0700', async () => {
    const keysDir = join(dir, 'keys');
    const k = await ensureSandboxKeys(keysDir);
    expect(mode(keysDir)).toBe(0o700);
    for (const name of Object.values(KEY_FILES)) expect(mode(join(keysDir, name))).toBe(0o600);
    expect(k.clientPrivateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
    expect(k.hostPrivateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
    expect(k.clientPublicKey).toMatch(/^ssh-ed25519 [A-Za-z0-9+/]+=* cowork-vm-client$/);
    expect(k.hostPublicKey).toMatch(/^ssh-ed25519 [A-Za-z0-9+/]+=* cowork-vm-guest-host$/);
    expect(sameKey(k.clientPublicKey, k.hostPublicKey)).toBe(false);
    expect(sameKey(k.hostPrivateKey, k.hostPublicKey)).toBe(true);
    expect(readFileSync(k.paths.hostPublicKey, 'utf8')).toBe(`${k.hostPublicKey}\n`);
  });

  it('loads the same keys on the next call', async () => {
    const a = await ensureSandboxKeys(dir);
    const b = await ensureSandboxKeys(dir);
    expect(b).toEqual(a);
  });

  it('writes keys OpenSSH itself reads, with the fingerprint ssh-keygen prints', async () => {
    const k = await ensureSandboxKeys(dir);
    const derived = execFileSync('ssh-keygen', ['-y', '-f', k.paths.hostPrivateKey]).toString().trim();
    expect(sameKey(derived, k.hostPublicKey)).toBe(true);
    const printed = execFileSync('ssh-keygen', [
      '-l',
      '-E',
      'sha256',
      '-f',
      k.paths.hostPublicKey,
    ]).toString();
    expect(printed.split(' ')[1]).toBe(k.hostFingerprint);
    expect(fingerprintOf(k.hostPrivateKey)).toBe(k.hostFingerprint);
  });

  it('tightens a private key file that is readable by others', async () => {
    const k = await ensureSandboxKeys(dir);
    chmodSync(k.paths.clientPrivateKey, 0o644);
    await ensureSandboxKeys(dir);
    expect(mode(k.paths.clientPrivateKey)).toBe(0o600);
  });

  it('rewrites a missing or stale .pub from the private key', async () => {
    const k = await ensureSandboxKeys(dir);
    unlinkSync(k.paths.hostPublicKey);
    writeFileSync(k.paths.clientPublicKey, 'ssh-ed25519 AAAA stale\n');
    const again = await ensureSandboxKeys(dir);
    expect(again.hostPublicKey).toBe(k.hostPublicKey);
    expect(readFileSync(k.paths.hostPublicKey, 'utf8')).toBe(`${k.hostPublicKey}\n`);
    expect(readFileSync(k.paths.clientPublicKey, 'utf8')).toBe(`${k.clientPublicKey}\n`);
  });

  it('refuses a corrupt or non-ed25519 host key instead of silently replacing the pinned key', async () => {
    const k = await ensureSandboxKeys(dir);
    writeFileSync(k.paths.hostPrivateKey, 'garbage', { mode: 0o600 });
    await expect(ensureSandboxKeys(dir)).rejects.toBeInstanceOf(CoworkError);
    execFileSync('ssh-keygen', ['-q', '-t', 'ecdsa', '-N', '', '-f', join(dir, 'ecdsa')]);
    writeFileSync(k.paths.hostPrivateKey, readFileSync(join(dir, 'ecdsa')), { mode: 0o600 });
    const err = await ensureSandboxKeys(dir).catch((e: unknown) => e);
    expect(CoworkError.is(err, 'invalidState')).toBe(true);
    expect((err as Error).message).toMatch(/not an ed25519 private key/);
  });

  it('fails with a CoworkError when the folder cannot be created', async () => {
    writeFileSync(join(dir, 'file'), '');
    const err = await ensureSandboxKeys(join(dir, 'file', 'keys')).catch((e: unknown) => e);
    expect(CoworkError.is(err, 'unavailable')).toBe(true);
  });
});

describe('key helpers', () => {
  it('builds an authorized_keys line without agent/X11 forwarding', async () => {
    const k = await ensureSandboxKeys(dir);
    const line = authorizedKeysLine(k.clientPrivateKey);
    expect(line).toBe(`no-agent-forwarding,no-X11-forwarding ${k.clientPublicKey}`);
    expect(k.authorizedKeysLine).toBe(line);
    expect(publicKeyLine(k.clientPublicKey, 'x')).toBe(
      `${k.clientPublicKey.split(' ').slice(0, 2).join(' ')} x`,
    );
  });

  it('never hands out a key its own parser rejects (ssh2 strips leading zero bytes of 1 in 256)', () => {
    // 1,500 draws: without the redraw about 6 of them would be malformed (P(none) ≈ 0.3%).
    for (let i = 0; i < 1500; i++) {
      const priv = generateEd25519('t');
      const parsed = utils.parseKey(priv);
      expect(parsed instanceof Error ? parsed.message : 'ok').toBe('ok');
      const pub = publicKeyLine(priv, 't');
      expect(utils.parseKey(pub) instanceof Error).toBe(false);
    }
  });

  it('rejects text that is not a key', () => {
    expect(() => fingerprintOf('not a key')).toThrow(CoworkError);
    expect(() => sameKey('ssh-ed25519 AAAA', 'x')).toThrow(CoworkError);
  });
});
