import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ControlStore,
  createPairingCode,
  defaultControlStorePath,
  listDevices,
  PAIRING_ALPHABET,
  revokeDevice,
  type SecurityEvent,
} from '../../src/host/control/index.js';
import { hostPaths } from '../../src/host/paths.js';

let dir: string;
let clock: { t: number; now(): number };
let events: SecurityEvent[];
let store: ControlStore;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cowork-store-'));
  clock = {
    t: 1_000_000,
    now() {
      return this.t;
    },
  };
  events = [];
  store = new ControlStore({
    file: join(dir, 'sub', 'devices.sqlite'),
    clock,
    recorder: { record: (_t, e) => events.push(e) },
  });
});

afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const redeem = (code: string, identity = 'ip:1') =>
  store.redeemPairingCode({ code, identity, name: 'n', channel: 'control' });

describe('pairing codes', () => {
  it('are 6 characters of the unambiguous alphabet, distinct, valid 5 minutes', () => {
    const codes = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const { code, expiresAt } = store.createPairingCode({ role: 'viewer' });
      expect(code).toMatch(/^[A-HJ-NP-Z2-9]{6}$/);
      for (const ch of code) expect(PAIRING_ALPHABET).toContain(ch);
      expect(expiresAt).toBe(clock.t + 5 * 60_000);
      codes.add(code);
    }
    expect(codes.size).toBe(300);
  });

  it('grant the role they were made for, once', () => {
    const { code } = store.createPairingCode({ role: 'operator' });
    const { device, key } = redeem(code);
    expect(device.role).toBe('operator');
    expect(key).toHaveLength(32);
    expect(() => redeem(code, 'ip:2')).toThrow(expect.objectContaining({ code: 'denied' }));
  });

  it('expire at 5 minutes', () => {
    const { code } = store.createPairingCode({ role: 'viewer' });
    clock.t += 5 * 60_000 - 1;
    expect(redeem(code).device.role).toBe('viewer');
    const second = store.createPairingCode({ role: 'viewer' });
    clock.t += 5 * 60_000;
    expect(() => redeem(second.code)).toThrow(expect.objectContaining({ code: 'denied' }));
  });

  it('refuse an unknown role', () => {
    expect(() => store.createPairingCode({ role: 'root' as never })).toThrow();
  });

  it('register channel users without a key, replacing an earlier pairing of the same user', () => {
    const a = store.redeemPairingCode({
      code: store.createPairingCode({ role: 'viewer' }).code,
      identity: 'telegram:42',
      name: 'alice',
      channel: 'telegram',
      channelUser: '42',
    });
    expect(a.key).toBeUndefined();
    const b = store.redeemPairingCode({
      code: store.createPairingCode({ role: 'operator' }).code,
      identity: 'telegram:42',
      name: 'alice',
      channel: 'telegram',
      channelUser: '42',
    });
    expect(store.findChannelUser('telegram', '42')?.id).toBe(b.device.id);
    expect(store.getDevice(a.device.id)?.revokedAt).toBeDefined();
    expect(store.deviceKey(b.device.id)).toBeUndefined();
  });
});

describe('pairing lockout', () => {
  it('locks an identity after 5 failures for 15 minutes; other identities are unaffected', () => {
    for (let i = 0; i < 4; i++)
      expect(() => redeem('ZZZZZZ')).toThrow(expect.objectContaining({ code: 'denied' }));
    expect(() => redeem('ZZZZZZ')).toThrow(expect.objectContaining({ code: 'limitExceeded' }));
    const { code } = store.createPairingCode({ role: 'viewer' });
    expect(() => redeem(code)).toThrow(expect.objectContaining({ code: 'limitExceeded' }));
    expect(redeem(code, 'ip:other').device.role).toBe('viewer');
    expect(events.filter((e) => e.type === 'control.pair_failed')).toHaveLength(5);
    expect(events).toContainEqual({
      type: 'control.lockout',
      scope: 'pair',
      key: 'pair:ip:1',
      until: clock.t + 15 * 60_000,
    });
    clock.t += 15 * 60_000 - 1;
    expect(() => redeem('ZZZZZZ')).toThrow(expect.objectContaining({ code: 'limitExceeded' }));
    clock.t += 1;
    // After the lock, the count starts again from zero.
    for (let i = 0; i < 4; i++)
      expect(() => redeem('ZZZZZZ')).toThrow(expect.objectContaining({ code: 'denied' }));
  });

  it('forgets failures older than the window', () => {
    for (let i = 0; i < 4; i++)
      expect(() => redeem('ZZZZZZ')).toThrow(expect.objectContaining({ code: 'denied' }));
    clock.t += 15 * 60_000;
    for (let i = 0; i < 4; i++)
      expect(() => redeem('ZZZZZZ')).toThrow(expect.objectContaining({ code: 'denied' }));
  });

  it('a malformed code counts as a failure too', () => {
    for (let i = 0; i < 4; i++)
      expect(() => redeem('x')).toThrow(expect.objectContaining({ code: 'denied' }));
    expect(() => redeem('1111111')).toThrow(expect.objectContaining({ code: 'limitExceeded' }));
  });
});

describe('address-independent pairing budgets', () => {
  it('withdraws every live code after 5 wrong attempts in total, from 5 identities', () => {
    const a = store.createPairingCode({ role: 'admin' });
    for (let i = 0; i < 5; i++)
      expect(() => redeem('ZZZZZZ', `ip:10.0.0.${i}`)).toThrow(expect.objectContaining({ code: 'denied' }));
    const b = store.createPairingCode({ role: 'admin' }); // made afterwards: its own budget
    expect(() => redeem(a.code, 'ip:owner')).toThrow(expect.objectContaining({ code: 'denied' }));
    expect(redeem(b.code, 'ip:owner').device.role).toBe('admin');
    expect(events).toContainEqual(expect.objectContaining({ type: 'control.lockout', key: 'pair:code' }));
  });

  it('keeps the spent budget across reopening the store', () => {
    const a = store.createPairingCode({ role: 'admin' });
    for (let i = 0; i < 5; i++) expect(() => redeem('ZZZZZZ', `telegram:${i}`)).toThrow();
    store.close();
    store = new ControlStore({ file: join(dir, 'sub', 'devices.sqlite'), clock });
    expect(() => redeem(a.code, 'ip:owner')).toThrow(expect.objectContaining({ code: 'denied' }));
  });

  it('takes at most 10 attempts a minute host-wide, then refuses even a right code until the minute is over', () => {
    for (let i = 0; i < 10; i++) expect(() => redeem('ZZZZZZ', `ip:${i}`)).toThrow();
    const { code } = store.createPairingCode({ role: 'viewer' });
    expect(() => redeem(code, 'ip:owner')).toThrow(
      expect.objectContaining({ code: 'limitExceeded', message: expect.stringMatching(/on this host/) }),
    );
    clock.t += 60_000;
    expect(redeem(code, 'ip:owner').device.role).toBe('viewer');
  });

  it('does not lock an identity that is none (lockIdentity: false, used for loopback addresses)', () => {
    const opts = { identity: 'ip:127.0.0.1', lockIdentity: false, name: 'n', channel: 'control' };
    for (let i = 0; i < 6; i++)
      expect(() => store.redeemPairingCode({ ...opts, code: 'ZZZZZZ' })).toThrow(
        expect.objectContaining({ code: 'denied' }),
      );
    clock.t += 60_000;
    const { code } = store.createPairingCode({ role: 'viewer' });
    expect(store.redeemPairingCode({ ...opts, code }).device.role).toBe('viewer');
  });

  it('adds the budget column to a store made before it existed', () => {
    store.close();
    const file = join(dir, 'old.sqlite');
    const old = new Database(file);
    old.exec(
      'CREATE TABLE pairing_codes (code TEXT PRIMARY KEY, role TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, used_at INTEGER, used_by TEXT)',
    );
    old.close();
    store = new ControlStore({ file, clock });
    const { code } = store.createPairingCode({ role: 'viewer' });
    expect(redeem(code).device.role).toBe('viewer');
  });
});

describe('lockout table', () => {
  it('forgets counters from rotating addresses once no policy can use them', () => {
    for (let i = 0; i < 50; i++)
      store.lockouts.recordFailure('auth', `auth:ip:10.1.0.${i}`, { maxFailures: 5, lockMs: 60_000 });
    for (let i = 0; i < 5; i++)
      store.lockouts.recordFailure('auth', 'auth:ip:10.9.9.9', { maxFailures: 5, lockMs: 3 * 3600_000 });
    clock.t += 2 * 3600_000;
    store.lockouts.prune();
    const db = new Database(join(dir, 'sub', 'devices.sqlite'), { readonly: true });
    const keys = (db.prepare('SELECT key FROM lockouts').all() as { key: string }[]).map((r) => r.key);
    db.close();
    expect(keys).toEqual(['auth:ip:10.9.9.9']); // still locked: kept
  });
});

describe('device names', () => {
  it('are stored without control, bidi or zero-width characters and at most 64 characters long', () => {
    const { code } = store.createPairingCode({ role: 'viewer' });
    const { device } = store.redeemPairingCode({
      code,
      identity: 'ip:1',
      name: `\u202Eevil\u0000\u009b\u2067${'w'.repeat(80)}`,
      channel: 'control',
    });
    expect(device.name).toBe(`evil${'w'.repeat(60)}`);
  });

  it('refuses a name with nothing printable before counting anything', () => {
    const { code } = store.createPairingCode({ role: 'viewer' });
    expect(() =>
      store.redeemPairingCode({ code, identity: 'ip:1', name: '\u200B\u200D\t', channel: 'control' }),
    ).toThrow(expect.objectContaining({ code: 'invalidArgument' }));
    expect(events.filter((e) => e.type === 'control.pair_failed')).toEqual([]);
    expect(redeem(code).device.role).toBe('viewer');
  });
});

describe('devices', () => {
  it('revokes once; unknown ids are notFound', () => {
    const { device } = redeem(store.createPairingCode({ role: 'admin' }).code);
    const seen: string[] = [];
    store.onRevoke((id) => seen.push(id));
    expect(store.revokeDevice(device.id, 'me').revokedBy).toBe('me');
    expect(seen).toEqual([device.id]);
    expect(store.deviceKey(device.id)).toBeUndefined();
    expect(store.isActive(device.id)).toBe(false);
    expect(() => store.revokeDevice(device.id)).toThrow(expect.objectContaining({ code: 'invalidState' }));
    expect(() => store.revokeDevice('nope')).toThrow(expect.objectContaining({ code: 'notFound' }));
    expect(store.listDevices()).toEqual([]);
    expect(store.listDevices({ includeRevoked: true })).toHaveLength(1);
    expect(events).toContainEqual({ type: 'control.device_revoked', deviceId: device.id, by: 'me' });
  });

  it('keeps the file and its folder private', () => {
    expect(statSync(join(dir, 'sub', 'devices.sqlite')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'sub')).mode & 0o777).toBe(0o700);
  });

  it('host functions for the CLI work on the state dir', () => {
    const paths = hostPaths({ COWORK_VM_STATE_DIR: join(dir, 'state'), HOME: dir });
    const { code } = createPairingCode({ role: 'admin' }, paths);
    const s = new ControlStore({ file: defaultControlStorePath(paths) });
    const { device } = s.redeemPairingCode({ code, identity: 'x', name: 'laptop', channel: 'control' });
    s.close();
    expect(listDevices({}, paths).map((d) => d.name)).toEqual(['laptop']);
    expect(revokeDevice(device.id, paths).revokedBy).toBe('cli');
    expect(listDevices({}, paths)).toEqual([]);
  });
});

describe('server id', () => {
  it('is generated once and survives reopening the store', () => {
    const id = store.serverId();
    expect(id).toMatch(/^cvm-[0-9a-f]{16}$/);
    expect(store.serverId()).toBe(id);
    store.close();
    store = new ControlStore({ file: join(dir, 'sub', 'devices.sqlite'), clock });
    expect(store.serverId()).toBe(id);
  });
});
