import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Challenge-response: the server sends a fresh random nonce; the client proves it holds its
 * device key by answering hex(HMAC-SHA256(key, UTF-8(nonce) ‖ UTF-8(serverId))). Nonces are
 * fixed-length base64url, so the concatenation is unambiguous; binding the server id means an
 * answer made for one server is useless against another.
 */
export const AUTH_TIMEOUT_MS = 10_000;
export const AUTH_LOCKOUT = { maxFailures: 5, lockMs: 5 * 60_000 } as const;

export function newNonce(): string {
  return randomBytes(32).toString('base64url');
}

export function computeAuthHmac(deviceKey: Buffer, nonce: string, serverId: string): string {
  return createHmac('sha256', deviceKey).update(nonce, 'utf8').update(serverId, 'utf8').digest('hex');
}

/** Constant-time check of a client's answer. */
export function verifyAuthHmac(
  deviceKey: Buffer,
  nonce: string,
  serverId: string,
  answerHex: string,
): boolean {
  const expected = Buffer.from(computeAuthHmac(deviceKey, nonce, serverId), 'hex');
  const given = Buffer.from(answerHex, 'hex');
  if (given.length !== expected.length) return false;
  return timingSafeEqual(expected, given);
}

export function decodeDeviceKey(b64url: string): Buffer {
  return Buffer.from(b64url, 'base64url');
}

/**
 * Nonces issued and not yet answered, each bound to the connection it was sent on. `take`
 * removes the nonce whatever the outcome, so every nonce is answered at most once — a replayed
 * answer is refused on this connection and on any other.
 */
export class NonceRegistry<Conn> {
  private readonly issued = new Map<string, { conn: Conn; issuedAt: number }>();

  issue(conn: Conn, now: number): string {
    const nonce = newNonce();
    this.issued.set(nonce, { conn, issuedAt: now });
    return nonce;
  }

  /** The issue time if `nonce` was issued to `conn` and not used yet; consumes it either way. */
  take(conn: Conn, nonce: string): number | undefined {
    const entry = this.issued.get(nonce);
    if (!entry) return undefined;
    if (entry.conn !== conn) return undefined; // another connection's nonce: leave it alone
    this.issued.delete(nonce);
    return entry.issuedAt;
  }

  /** Forget every nonce of a closed connection. */
  drop(conn: Conn): void {
    for (const [nonce, entry] of this.issued) if (entry.conn === conn) this.issued.delete(nonce);
  }

  get size(): number {
    return this.issued.size;
  }
}
