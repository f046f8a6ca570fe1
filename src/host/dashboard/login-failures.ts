import type { Clock, SecurityRecorder } from '../control/events.js';
import { recordSafely } from '../control/events.js';
import { addressKey } from '../control/net.js';

/**
 * Failed dashboard logins, counted per address (IPv6: per /64) in a fixed window. Past the
 * limit, failures are answered 429 with Retry-After instead of 401, and the first one of each
 * episode is recorded. A valid token is still accepted (the server checks it first): tokens are
 * 256 random bits, so the count cannot be what stops guessing, and refusing a valid one would
 * let any local process lock the owner out of the dashboard.
 */
export const LOGIN_FAILURES = { perWindow: 10, windowMs: 60_000, maxAddresses: 1024 } as const;

interface Window {
  start: number;
  count: number;
  alerted: boolean;
}

export class LoginFailures {
  private readonly windows = new Map<string, Window>();

  constructor(private readonly clock: Clock) {}

  /** Counts one failure; returns the seconds to wait when the address is over the limit. */
  fail(ip: string, recorder: SecurityRecorder | undefined): number | undefined {
    const key = addressKey(ip);
    const now = this.clock.now();
    let w = this.windows.get(key);
    if (!w || now - w.start >= LOGIN_FAILURES.windowMs) {
      this.windows.delete(key);
      w = { start: now, count: 0, alerted: false };
      this.windows.set(key, w);
      if (this.windows.size > LOGIN_FAILURES.maxAddresses) {
        const oldest = this.windows.keys().next().value;
        if (oldest !== undefined) this.windows.delete(oldest);
      }
    }
    w.count++;
    if (w.count <= LOGIN_FAILURES.perWindow) return undefined;
    if (!w.alerted) {
      w.alerted = true;
      recordSafely(recorder, {
        type: 'control.lockout',
        scope: 'auth',
        key: `dashboard:${key}`,
        until: w.start + LOGIN_FAILURES.windowMs,
      });
    }
    return Math.max(1, Math.ceil((w.start + LOGIN_FAILURES.windowMs - now) / 1000));
  }

  clear(ip: string): void {
    this.windows.delete(addressKey(ip));
  }
}
