import type { Clock } from '../control/events.js';

/** What one hit of a key found. */
export interface WindowHit {
  allowed: boolean;
  /** The first refusal of this key in this window (to record an episode once). */
  firstRefusal: boolean;
  /** When this key's window ends (clock ms). */
  resetAt: number;
  /** Whole seconds until then, at least 1 (for Retry-After and "retry in N s"). */
  retryAfterS: number;
}

/**
 * Per-key fixed-window counter (e.g. 30 messages per user per minute, 600 dashboard requests per
 * session per minute, 10 failed logins per address per minute). In memory on purpose: it
 * throttles, it is not a security boundary that must survive a restart (the pairing lockouts
 * that are live in the device store). Memory is bounded: expired windows are pruned past 10,000
 * keys, and with `maxKeys` the oldest window goes once that many are kept.
 */
export class FixedWindowLimiter {
  private readonly windows = new Map<string, { start: number; count: number; warned: boolean }>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly clock: Clock,
    private readonly opts: { maxKeys?: number } = {},
  ) {}

  /** Counts one hit; `allowed` false once the key has used its budget for this window. */
  hit(key: string): WindowHit {
    const now = this.clock.now();
    let w = this.windows.get(key);
    if (!w || now - w.start >= this.windowMs) {
      // Re-inserted, so the map's order stays oldest window first.
      this.windows.delete(key);
      w = { start: now, count: 0, warned: false };
      this.windows.set(key, w);
      this.bound(now);
    }
    w.count++;
    const resetAt = w.start + this.windowMs;
    const retryAfterS = Math.max(1, Math.ceil((resetAt - now) / 1000));
    if (w.count <= this.limit) return { allowed: true, firstRefusal: false, resetAt, retryAfterS };
    const firstRefusal = !w.warned;
    w.warned = true;
    return { allowed: false, firstRefusal, resetAt, retryAfterS };
  }

  /** Forgets a key's window (a session ended, a login succeeded). */
  forget(key: string): void {
    this.windows.delete(key);
  }

  private bound(now: number): void {
    const max = this.opts.maxKeys;
    if (this.windows.size > Math.min(10_000, max ?? Number.POSITIVE_INFINITY))
      for (const [k, w] of this.windows) if (now - w.start >= this.windowMs) this.windows.delete(k);
    if (max === undefined) return;
    for (const k of this.windows.keys()) {
      if (this.windows.size <= max) break;
      this.windows.delete(k);
    }
  }
}
