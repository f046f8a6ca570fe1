import { FixedWindowLimiter } from '../channels/rate-limit.js';
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

export class LoginFailures {
  private readonly windows: FixedWindowLimiter;

  constructor(clock: Clock) {
    const { perWindow, windowMs, maxAddresses } = LOGIN_FAILURES;
    this.windows = new FixedWindowLimiter(perWindow, windowMs, clock, { maxKeys: maxAddresses });
  }

  /** Counts one failure; returns the seconds to wait when the address is over the limit. */
  fail(ip: string, recorder: SecurityRecorder | undefined): number | undefined {
    const key = addressKey(ip);
    const hit = this.windows.hit(key);
    if (hit.allowed) return undefined;
    if (hit.firstRefusal)
      recordSafely(recorder, {
        type: 'control.lockout',
        scope: 'auth',
        key: `dashboard:${key}`,
        until: hit.resetAt,
      });
    return hit.retryAfterS;
  }

  clear(ip: string): void {
    this.windows.forget(addressKey(ip));
  }
}
