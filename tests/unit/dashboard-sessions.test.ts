import { timingSafeEqual } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  DashboardAuth,
  type DashboardAuthOptions,
  LOGIN_TOKEN_TTL_MS,
  SESSION_IDLE_MS,
  type SessionBinding,
} from '../../src/host/dashboard/index.js';

/** The dashboard's token and session store, on a clock the test moves. */

const owner: SessionBinding = { deviceId: 'd-owner', deviceName: 'dashboard (admin)', role: 'admin' };
const viewer: SessionBinding = { deviceId: 'd-viewer', deviceName: 'dashboard (viewer)', role: 'viewer' };

function setup(opts: DashboardAuthOptions = {}) {
  const clock = { t: 1_000_000, now: () => clock.t };
  const compared: [Buffer, Buffer][] = [];
  const equals = (a: Buffer, b: Buffer) => {
    compared.push([a, b]);
    return timingSafeEqual(a, b);
  };
  const auth = new DashboardAuth({ clock, equals, ...opts });
  return { auth, clock, compared };
}

describe('login tokens', () => {
  it('are 256 random bits, distinct, and expire after 5 minutes', () => {
    const { auth } = setup();
    const a = auth.issueToken(owner);
    const b = auth.issueToken(owner);
    expect(a.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(a.token).not.toBe(b.token);
    expect(a.expiresAt - 1_000_000).toBe(LOGIN_TOKEN_TTL_MS);
  });

  it('log in once: a second use of the same token is refused', () => {
    const { auth } = setup();
    const { token } = auth.issueToken(owner);
    const first = auth.redeem(token);
    expect(first?.session).toMatchObject(owner);
    expect(first?.cookie).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(auth.redeem(token)).toBeUndefined();
    expect(auth.tokenCount).toBe(0);
  });

  it('work until the last millisecond of their life and not at its end', () => {
    const { auth, clock } = setup();
    const early = auth.issueToken(owner).token;
    const late = auth.issueToken(owner).token;
    clock.t += LOGIN_TOKEN_TTL_MS - 1;
    expect(auth.redeem(early)).toBeDefined();
    clock.t += 1;
    expect(auth.redeem(late)).toBeUndefined();
  });

  it('refuse an unknown, an empty and an overlong token', () => {
    const { auth, compared } = setup();
    auth.issueToken(owner);
    expect(auth.redeem('x'.repeat(43))).toBeUndefined();
    expect(auth.redeem('')).toBeUndefined();
    const before = compared.length;
    expect(auth.redeem('y'.repeat(10_000))).toBeUndefined();
    expect(compared.length, 'an overlong token is not even hashed and compared').toBe(before);
    expect(auth.tokenCount, 'a wrong guess spends no real token').toBe(1);
  });

  it('are compared in constant time with every live token, whichever one matches', () => {
    const { auth, compared } = setup();
    const tokens = Array.from({ length: 5 }, () => auth.issueToken(owner).token);
    for (const [i, presented] of [tokens[0], tokens[4], 'z'.repeat(43)].entries()) {
      compared.length = 0;
      auth.redeem(presented!);
      // No early exit: as many comparisons as tokens were live, each of two 32-byte SHA-256 digests.
      expect(compared.length).toBe(5 - i);
      for (const [a, b] of compared) expect([a.length, b.length]).toEqual([32, 32]);
    }
  });

  it('are kept only as hashes', () => {
    const { auth } = setup();
    const { token } = auth.issueToken(owner);
    const dump = JSON.stringify(auth, (_k, v) => (v instanceof Map ? [...v] : v));
    expect(dump).not.toContain(token);
  });

  it('are capped: the oldest live token is dropped for a new one', () => {
    const { auth } = setup({ maxTokens: 2 });
    const a = auth.issueToken(owner).token;
    const b = auth.issueToken(owner).token;
    const c = auth.issueToken(owner).token;
    expect(auth.redeem(a)).toBeUndefined();
    expect(auth.redeem(b)).toBeDefined();
    expect(auth.redeem(c)).toBeDefined();
  });
});

describe('sessions', () => {
  function login(auth: DashboardAuth, b: SessionBinding = owner) {
    const r = auth.redeem(auth.issueToken(b).token);
    if (!r) throw new Error('login failed');
    return r;
  }

  it('are found by their cookie, each with its own CSRF token, and not by anything else', () => {
    const { auth } = setup();
    const a = login(auth);
    const b = login(auth, viewer);
    expect(auth.session(a.cookie)?.deviceId).toBe('d-owner');
    expect(auth.session(b.cookie)?.role).toBe('viewer');
    expect(a.session.csrf).not.toBe(b.session.csrf);
    expect(a.session.csrf).not.toBe(a.cookie);
    expect(auth.session(a.session.id), 'the stored id (a hash) is not a cookie').toBeUndefined();
    expect(auth.session(a.session.csrf)).toBeUndefined();
    expect(auth.session(undefined)).toBeUndefined();
  });

  it('end after 12 hours without a request; each request restarts the 12 hours', () => {
    const { auth, clock } = setup();
    const { cookie } = login(auth);
    const ended: string[] = [];
    auth.onEnd((_s, why) => ended.push(why));
    clock.t += SESSION_IDLE_MS - 1;
    expect(auth.session(cookie)).toBeDefined();
    clock.t += SESSION_IDLE_MS - 1;
    expect(auth.session(cookie)).toBeDefined();
    clock.t += SESSION_IDLE_MS;
    expect(auth.session(cookie)).toBeUndefined();
    expect(ended).toEqual(['expired']);
  });

  it('idle ones are ended by the sweep too (so their streams close)', () => {
    const { auth, clock } = setup();
    login(auth);
    const ended: string[] = [];
    auth.onEnd((s, why) => ended.push(`${s.deviceId}:${why}`));
    clock.t += SESSION_IDLE_MS;
    auth.sweep();
    expect(ended).toEqual(['d-owner:expired']);
    expect(auth.sessionCount).toBe(0);
  });

  it("end at once when their device is revoked, and the device's unused tokens die with them", () => {
    const { auth } = setup();
    const a = login(auth);
    const b = login(auth, viewer);
    const pending = auth.issueToken(owner).token;
    const ended: string[] = [];
    auth.onEnd((s, why) => ended.push(`${s.deviceId}:${why}`));
    expect(auth.endDevice('d-owner')).toBe(1);
    expect(ended).toEqual(['d-owner:revoked']);
    expect(auth.session(a.cookie)).toBeUndefined();
    expect(auth.redeem(pending)).toBeUndefined();
    expect(auth.session(b.cookie)).toBeDefined();
  });

  it('are capped: a login beyond the cap ends the least recently used session', () => {
    const { auth, clock } = setup({ maxSessions: 2 });
    const a = login(auth);
    clock.t += 1;
    const b = login(auth);
    clock.t += 1;
    auth.session(a.cookie);
    clock.t += 1;
    const c = login(auth);
    expect(auth.session(b.cookie)).toBeUndefined();
    expect(auth.session(a.cookie)).toBeDefined();
    expect(auth.session(c.cookie)).toBeDefined();
  });

  it('all end when the store closes', () => {
    const { auth } = setup();
    const a = login(auth);
    const t = auth.issueToken(owner).token;
    auth.close();
    expect(auth.session(a.cookie)).toBeUndefined();
    expect(auth.redeem(t)).toBeUndefined();
  });
});
