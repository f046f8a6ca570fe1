import type { Clock } from '../control/events.js';

/**
 * Per-key fixed-window counter (e.g. 30 messages per user per minute). In memory on purpose:
 * it throttles chat traffic, it is not a security boundary that must survive a restart (the
 * pairing lockouts that are live in the device store).
 */
export class FixedWindowLimiter {
  private readonly windows = new Map<string, { start: number; count: number; warned: boolean }>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly clock: Clock,
  ) {}

  /** Counts one hit; `allowed` false once the key has used its budget for this window. */
  hit(key: string): { allowed: boolean; firstRefusal: boolean } {
    const now = this.clock.now();
    let w = this.windows.get(key);
    if (!w || now - w.start >= this.windowMs) {
      w = { start: now, count: 0, warned: false };
      this.windows.set(key, w);
      if (this.windows.size > 10_000) this.prune(now);
    }
    w.count++;
    if (w.count <= this.limit) return { allowed: true, firstRefusal: false };
    const firstRefusal = !w.warned;
    w.warned = true;
    return { allowed: false, firstRefusal };
  }

  private prune(now: number): void {
    for (const [k, w] of this.windows) if (now - w.start >= this.windowMs) this.windows.delete(k);
  }
}
