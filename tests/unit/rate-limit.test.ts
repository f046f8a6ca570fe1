import { describe, expect, it } from 'vitest';
import { FixedWindowLimiter } from '../../src/host/channels/rate-limit.js';

describe('FixedWindowLimiter', () => {
  it('allows the budget per window, refuses past it (the first refusal marked), and says when to retry', () => {
    const clock = { t: 10_000, now: () => clock.t };
    const l = new FixedWindowLimiter(2, 60_000, clock);
    expect(l.hit('a').allowed).toBe(true);
    clock.t += 30_500;
    expect(l.hit('a').allowed).toBe(true);
    const third = l.hit('a');
    expect(third).toEqual({ allowed: false, firstRefusal: true, resetAt: 70_000, retryAfterS: 30 });
    expect(l.hit('a').firstRefusal).toBe(false);
    expect(l.hit('b').allowed).toBe(true);
    clock.t = 70_000;
    expect(l.hit('a').allowed).toBe(true);
  });

  it('forget starts a key afresh', () => {
    const clock = { t: 0, now: () => clock.t };
    const l = new FixedWindowLimiter(1, 60_000, clock);
    l.hit('a');
    expect(l.hit('a').allowed).toBe(false);
    l.forget('a');
    expect(l.hit('a').allowed).toBe(true);
  });

  it('with maxKeys keeps at most that many windows, dropping the oldest', () => {
    const clock = { t: 0, now: () => clock.t };
    const l = new FixedWindowLimiter(1, 60_000, clock, { maxKeys: 3 });
    for (const k of ['a', 'b', 'c']) l.hit(k);
    expect(l.hit('a').allowed).toBe(false);
    l.hit('d'); // a is the oldest window: it goes
    expect(l.hit('a').allowed).toBe(true);
    expect(l.hit('c').allowed).toBe(false);
  });
});
