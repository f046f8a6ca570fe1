import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Role } from '../api/roles.js';
import { type Clock, systemClock } from '../control/events.js';

/**
 * The dashboard's one-time login tokens and its browser sessions, in memory only (a controller
 * restart logs everyone out). Neither a token nor a session cookie is kept as given: only its
 * SHA-256, so a heap dump or a log of this object's contents logs nobody in.
 *
 * - A login token is 256 random bits, valid `tokenTtlMs` (5 min), redeemable once. A presented
 *   token is compared (constant time, `equals`) with every live token's hash, with no early
 *   exit, so how long a refusal takes does not depend on which token it was closest to.
 * - A session lives until `idleMs` (12 h) without a request, until its device is revoked
 *   (`endDevice`), or until the controller stops. Each has its own CSRF token.
 */

export const LOGIN_TOKEN_TTL_MS = 5 * 60_000;
export const SESSION_IDLE_MS = 12 * 3600_000;
/** Live tokens at once; issuing one more drops the oldest (each `cowork-vm dashboard` makes one). */
export const MAX_LIVE_TOKENS = 32;
/** Sessions at once; a new login beyond it ends the least recently used one. */
export const MAX_SESSIONS = 64;
/** A presented token or cookie longer than this is not ours (ours are 43 characters). */
const MAX_SECRET_CHARS = 128;

/** Who a token or session speaks for: a device of the store and its role at login. */
export interface SessionBinding {
  deviceId: string;
  deviceName: string;
  role: Role;
}

export interface DashboardSession extends SessionBinding {
  /** SHA-256 (hex) of the cookie: how the session is named everywhere but in the browser. */
  readonly id: string;
  readonly csrf: string;
  readonly createdAt: number;
  lastSeenAt: number;
}

export type SessionEnd = 'expired' | 'revoked' | 'evicted' | 'closed';

interface TokenEntry {
  hash: Buffer;
  binding: SessionBinding;
  expiresAt: number;
}

export interface DashboardAuthOptions {
  clock?: Clock;
  tokenTtlMs?: number;
  idleMs?: number;
  maxTokens?: number;
  maxSessions?: number;
  /** The comparison of two hashes; `timingSafeEqual` (injectable so tests can watch it). */
  equals?: (a: Buffer, b: Buffer) => boolean;
}

function secret(): string {
  return randomBytes(32).toString('base64url');
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

export class DashboardAuth {
  private readonly clock: Clock;
  private readonly tokenTtlMs: number;
  private readonly idleMs: number;
  private readonly maxTokens: number;
  private readonly maxSessions: number;
  private readonly equals: (a: Buffer, b: Buffer) => boolean;
  private tokens: TokenEntry[] = [];
  private readonly sessions = new Map<string, DashboardSession>();
  private readonly endListeners = new Set<(s: DashboardSession, why: SessionEnd) => void>();

  constructor(opts: DashboardAuthOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.tokenTtlMs = opts.tokenTtlMs ?? LOGIN_TOKEN_TTL_MS;
    this.idleMs = opts.idleMs ?? SESSION_IDLE_MS;
    this.maxTokens = opts.maxTokens ?? MAX_LIVE_TOKENS;
    this.maxSessions = opts.maxSessions ?? MAX_SESSIONS;
    this.equals = opts.equals ?? timingSafeEqual;
  }

  /** A fresh one-time token for `binding`; the token itself is returned once and never stored. */
  issueToken(binding: SessionBinding): { token: string; expiresAt: number } {
    this.dropExpiredTokens();
    const token = secret();
    const expiresAt = this.clock.now() + this.tokenTtlMs;
    this.tokens.push({ hash: sha256(token), binding: { ...binding }, expiresAt });
    if (this.tokens.length > this.maxTokens) this.tokens.shift();
    return { token, expiresAt };
  }

  /**
   * Redeems a token: a new session and its cookie value, or undefined for an unknown, used or
   * expired token. The token is spent either way it matched.
   */
  redeem(token: string): { cookie: string; session: DashboardSession } | undefined {
    this.dropExpiredTokens();
    if (token.length === 0 || token.length > MAX_SECRET_CHARS) return undefined;
    const presented = sha256(token);
    let match: TokenEntry | undefined;
    for (const t of this.tokens) if (this.equals(t.hash, presented) && !match) match = t;
    if (!match) return undefined;
    this.tokens = this.tokens.filter((t) => t !== match);
    return this.openSession(match.binding);
  }

  /** The live session of a cookie value, its idle time reset; undefined if none or expired. */
  session(cookie: string | undefined): DashboardSession | undefined {
    if (!cookie || cookie.length > MAX_SECRET_CHARS) return undefined;
    const hash = sha256(cookie);
    const s = this.sessions.get(hash.toString('hex'));
    if (!s || !this.equals(Buffer.from(s.id, 'hex'), hash)) return undefined;
    const now = this.clock.now();
    if (now - s.lastSeenAt >= this.idleMs) {
      this.end(s, 'expired');
      return undefined;
    }
    s.lastSeenAt = now;
    return s;
  }

  /** Ends every session of a device and forgets its tokens (a revoke). */
  endDevice(deviceId: string): number {
    this.tokens = this.tokens.filter((t) => t.binding.deviceId !== deviceId);
    let n = 0;
    for (const s of [...this.sessions.values()]) {
      if (s.deviceId !== deviceId) continue;
      this.end(s, 'revoked');
      n++;
    }
    return n;
  }

  /** Ends the sessions idle for too long; call it now and then (the server does, every second). */
  sweep(): void {
    const now = this.clock.now();
    this.dropExpiredTokens();
    for (const s of [...this.sessions.values()])
      if (now - s.lastSeenAt >= this.idleMs) this.end(s, 'expired');
  }

  /** The devices that have a session now (for the revocation sweep). */
  deviceIds(): Set<string> {
    return new Set([...this.sessions.values()].map((s) => s.deviceId));
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  get tokenCount(): number {
    return this.tokens.length;
  }

  onEnd(listener: (s: DashboardSession, why: SessionEnd) => void): () => void {
    this.endListeners.add(listener);
    return () => this.endListeners.delete(listener);
  }

  /** Ends everything (the controller stops). */
  close(): void {
    this.tokens = [];
    for (const s of [...this.sessions.values()]) this.end(s, 'closed');
  }

  private openSession(binding: SessionBinding): { cookie: string; session: DashboardSession } {
    if (this.sessions.size >= this.maxSessions) {
      const oldest = [...this.sessions.values()].sort((a, b) => a.lastSeenAt - b.lastSeenAt)[0];
      if (oldest) this.end(oldest, 'evicted');
    }
    const cookie = secret();
    const now = this.clock.now();
    const session: DashboardSession = {
      ...binding,
      id: sha256(cookie).toString('hex'),
      csrf: secret(),
      createdAt: now,
      lastSeenAt: now,
    };
    this.sessions.set(session.id, session);
    return { cookie, session };
  }

  private end(s: DashboardSession, why: SessionEnd): void {
    if (!this.sessions.delete(s.id)) return;
    for (const l of this.endListeners) {
      try {
        l(s, why);
      } catch {
        // A listener (a stream that is already gone) must not keep the session alive.
      }
    }
  }

  private dropExpiredTokens(): void {
    const now = this.clock.now();
    this.tokens = this.tokens.filter((t) => t.expiresAt > now);
  }
}
