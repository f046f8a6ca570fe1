import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import ssh2 from 'ssh2';

// ssh2 is CommonJS and `utils` is not statically detectable as a named export under Node ESM.
const { utils } = ssh2;

import { CoworkError } from '../errors.js';

/**
 * Per-sandbox SSH keys, all generated ON THE HOST: the client key the host logs in with and
 * the guest's host key (handed to the guest through the read-only seed share and pinned by
 * the session — no trust-on-first-use). Private keys are OpenSSH format, files mode 0600.
 */

export const KEY_FILES = {
  clientPrivateKey: 'client_ed25519',
  clientPublicKey: 'client_ed25519.pub',
  hostPrivateKey: 'ssh_host_ed25519_key',
  hostPublicKey: 'ssh_host_ed25519_key.pub',
} as const;

const CLIENT_COMMENT = 'cowork-vm-client';
const HOST_COMMENT = 'cowork-vm-guest-host';

export interface SandboxKeys {
  /** OpenSSH private key the host authenticates with. */
  clientPrivateKey: string;
  /** `ssh-ed25519 AAAA… cowork-vm-client` */
  clientPublicKey: string;
  /** OpenSSH private key for the guest's sshd (seed share `ssh_host_ed25519_key`). */
  hostPrivateKey: string;
  /** `ssh-ed25519 AAAA… cowork-vm-guest-host` — pass to SshGuestSession as `hostKey`. */
  hostPublicKey: string;
  /** `SHA256:…` as `ssh-keygen -lf` prints it. */
  hostFingerprint: string;
  /** The line for the guest's `authorized_keys` (seed share). */
  authorizedKeysLine: string;
  paths: Record<keyof typeof KEY_FILES, string>;
}

interface ParsedKey {
  type: string;
  blob: Buffer;
  isPrivate: boolean;
}

function parse(key: string | Buffer, what: string): ParsedKey {
  const parsed = utils.parseKey(key);
  if (parsed instanceof Error) {
    throw new CoworkError('invalidArgument', `${what} is not a valid SSH key: ${parsed.message}`, parsed);
  }
  const one = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!one) throw new CoworkError('invalidArgument', `${what} contains no SSH key`);
  return { type: one.type, blob: one.getPublicSSH(), isPrivate: one.isPrivateKey() };
}

/** The raw public key blob (SSH wire format) of a public key line or a private key. */
export function publicKeyBlob(key: string | Buffer): Buffer {
  return parse(key, 'key').blob;
}

/** True when both keys (public lines or private keys) are the same key. Constant time. */
export function sameKey(a: string | Buffer, b: string | Buffer): boolean {
  const x = publicKeyBlob(a);
  const y = publicKeyBlob(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** `SHA256:<base64, no padding>` of a key, the format `ssh-keygen -l` and sshd logs use. */
export function fingerprintOf(key: string | Buffer): string {
  const digest = createHash('sha256').update(publicKeyBlob(key)).digest('base64');
  return `SHA256:${digest.replace(/=+$/, '')}`;
}

/** `ssh-ed25519 AAAA… comment` for a public or private key. */
export function publicKeyLine(key: string | Buffer, comment: string): string {
  const { type, blob } = parse(key, 'key');
  return `${type} ${blob.toString('base64')} ${comment}`;
}

/**
 * The authorized_keys line for the client key. Agent and X11 forwarding are refused; TCP
 * forwarding stays allowed because `GuestSession.forward` (Chromium DevTools) needs it.
 */
export function authorizedKeysLine(clientKey: string | Buffer): string {
  return `no-agent-forwarding,no-X11-forwarding ${publicKeyLine(clientKey, CLIENT_COMMENT)}`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw CoworkError.from(err, 'unavailable', `cannot read ${path}`);
  }
}

/** Write a file with mode 0600 via a temp file + rename, so a crash never leaves half a key. */
async function writePrivate(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp-${randomBytes(4).toString('hex')}`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/**
 * A new ed25519 private key in OpenSSH format. ssh2's generator strips leading zero bytes from
 * the 32-byte public key (mscdex/ssh2 #1390, #1513), so about 1 key in 256 comes out malformed
 * and its own parser rejects it — a first start that failed at random. Such a key is drawn
 * again; the rest are exactly what the generator gives.
 */
export function generateEd25519(comment: string): string {
  for (let i = 0; i < 64; i++) {
    const pair = utils.generateKeyPairSync('ed25519', { comment });
    if (!(utils.parseKey(pair.private) instanceof Error) && !(utils.parseKey(pair.public) instanceof Error))
      return pair.private;
  }
  throw new CoworkError('internal', 'could not generate a well-formed ed25519 key in 64 tries');
}

/** Load the private key at `path` or generate one; keep the `.pub` file in step with it. */
async function ensurePair(
  privPath: string,
  pubPath: string,
  comment: string,
): Promise<{ priv: string; pub: string }> {
  let priv: string;
  if (await exists(privPath)) {
    const st = await stat(privPath);
    // Keys written by an older run or by hand may be too open; ssh itself refuses those.
    if ((st.mode & 0o077) !== 0) await chmod(privPath, 0o600);
    priv = await readFile(privPath, 'utf8');
    const parsed = parse(priv, privPath);
    if (!parsed.isPrivate || parsed.type !== 'ssh-ed25519') {
      throw new CoworkError(
        'invalidState',
        `${privPath} is not an ed25519 private key; delete it and start the sandbox again to generate a new one`,
      );
    }
  } else {
    priv = generateEd25519(comment);
    await writePrivate(privPath, priv);
  }
  const pub = publicKeyLine(priv, comment);
  const current = (await exists(pubPath)) ? await readFile(pubPath, 'utf8') : '';
  if (current.trim() !== pub) await writePrivate(pubPath, `${pub}\n`);
  return { priv, pub };
}

/**
 * Generate (first call) or load (later calls) the sandbox's client and guest host key pairs in
 * `dir` (created with mode 0700 when missing). A corrupt or non-ed25519 private key is an
 * error, never silently replaced: the host key is what the session pins.
 */
export async function ensureSandboxKeys(dir: string): Promise<SandboxKeys> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw CoworkError.from(err, 'unavailable', `cannot create the key folder ${dir}`);
  }
  const paths = {
    clientPrivateKey: join(dir, KEY_FILES.clientPrivateKey),
    clientPublicKey: join(dir, KEY_FILES.clientPublicKey),
    hostPrivateKey: join(dir, KEY_FILES.hostPrivateKey),
    hostPublicKey: join(dir, KEY_FILES.hostPublicKey),
  };
  try {
    const client = await ensurePair(paths.clientPrivateKey, paths.clientPublicKey, CLIENT_COMMENT);
    const host = await ensurePair(paths.hostPrivateKey, paths.hostPublicKey, HOST_COMMENT);
    return {
      clientPrivateKey: client.priv,
      clientPublicKey: client.pub,
      hostPrivateKey: host.priv,
      hostPublicKey: host.pub,
      hostFingerprint: fingerprintOf(host.priv),
      authorizedKeysLine: authorizedKeysLine(client.priv),
      paths,
    };
  } catch (err) {
    throw CoworkError.from(err, 'unavailable', `cannot prepare the SSH keys in ${dir}`);
  }
}
