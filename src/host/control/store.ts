import { randomBytes, randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { CoworkError } from '../errors.js';
import type { HostPaths } from '../paths.js';
import { displaySafeName, sanitizeDeviceName } from './device-name.js';
import { type Clock, recordSafely, type SecurityRecorder, systemClock } from './events.js';
import { LockoutTable } from './lockouts.js';
import { PAIRING_ALPHABET, pairingCodeSchema, type Role, roleSchema } from './protocol.js';

/**
 * Devices, pairing codes and lockouts of the control API, in one SQLite file on the host
 * (mode 0600: it holds each device's HMAC key, which the server needs to verify answers).
 * The controller and the `cowork-vm pair` / `devices` commands may open the same file at the
 * same time (WAL, busy timeout).
 */

export const PAIRING_CODE_TTL_MS = 5 * 60_000;
export const PAIR_LOCKOUT = { maxFailures: 5, lockMs: 15 * 60_000 } as const;
/**
 * Budgets that do not depend on who is asking (addresses and chat ids are free to rotate):
 * every wrong attempt, from anyone, counts against every code that is live at that moment, and
 * a code that has seen `codeMaxFailures` of them is withdrawn; and the whole host accepts at
 * most `attemptsPerWindow` pairing attempts per `windowMs`.
 */
export const PAIR_BUDGET = { codeMaxFailures: 5, attemptsPerWindow: 10, windowMs: 60_000 } as const;
const HOST_LIMIT_PREFIX = 'too many pairing attempts on this host';
/** True for the refusal of the host-wide pairing window (as opposed to one identity's lockout). */
export function isHostPairingLimit(err: CoworkError): boolean {
  return err.code === 'limitExceeded' && err.message.startsWith(HOST_LIMIT_PREFIX);
}
const NOT_VALID =
  'pairing code not valid (wrong, expired, already used, or withdrawn after too many wrong attempts); run `cowork-vm pair` on the host for a new one';

export interface DeviceRecord {
  id: string;
  name: string;
  role: Role;
  /** 'control' for WebSocket devices; a channel name ('telegram') for messaging users. */
  channel: string;
  /** The channel's user id (e.g. the Telegram user id); absent for control devices. */
  channelUser?: string;
  createdAt: number;
  lastSeenAt?: number;
  revokedAt?: number;
  revokedBy?: string;
}

interface DeviceRow {
  id: string;
  name: string;
  role: string;
  channel: string;
  channel_user: string | null;
  created_at: number;
  last_seen_at: number | null;
  revoked_at: number | null;
  revoked_by: string | null;
}

export interface ControlStoreOptions {
  file: string;
  clock?: Clock;
  recorder?: SecurityRecorder;
}

export function defaultControlStorePath(paths: HostPaths): string {
  return join(paths.stateDir, 'control', 'devices.sqlite');
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS devices (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  channel TEXT NOT NULL,
  channel_user TEXT,
  key BLOB,
  created_at INTEGER NOT NULL,
  last_seen_at INTEGER,
  revoked_at INTEGER,
  revoked_by TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS devices_channel_user ON devices(channel, channel_user)
  WHERE channel_user IS NOT NULL AND revoked_at IS NULL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pairing_codes (
  code TEXT PRIMARY KEY,
  role TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER,
  used_by TEXT,
  failures INTEGER NOT NULL DEFAULT 0
);
`;

function toDevice(r: DeviceRow): DeviceRecord {
  return {
    id: r.id,
    // Names stored before they were sanitized at pairing are made safe here, on the way out.
    name: displaySafeName(r.name),
    role: roleSchema.parse(r.role),
    channel: r.channel,
    ...(r.channel_user !== null ? { channelUser: r.channel_user } : {}),
    createdAt: r.created_at,
    ...(r.last_seen_at !== null ? { lastSeenAt: r.last_seen_at } : {}),
    ...(r.revoked_at !== null ? { revokedAt: r.revoked_at } : {}),
    ...(r.revoked_by !== null ? { revokedBy: r.revoked_by } : {}),
  };
}

function openPrivateDb(file: string): Database.Database {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  // Create the file 0600 before SQLite does, so the keys are never readable by others, not even briefly.
  if (!existsSync(file)) closeSync(openSync(file, 'a', 0o600));
  chmodSync(file, 0o600);
  try {
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('busy_timeout = 5000');
    db.exec(SCHEMA);
    const columns = db.prepare('PRAGMA table_info(pairing_codes)').all() as { name: string }[];
    if (!columns.some((c) => c.name === 'failures'))
      db.exec('ALTER TABLE pairing_codes ADD COLUMN failures INTEGER NOT NULL DEFAULT 0');
    return db;
  } catch (err) {
    throw CoworkError.from(err, 'unavailable', `cannot open the device store ${file}`);
  }
}

export class ControlStore {
  readonly file: string;
  readonly lockouts: LockoutTable;
  private readonly db: Database.Database;
  private readonly clock: Clock;
  private readonly recorder: SecurityRecorder | undefined;
  private readonly emitter = new EventEmitter();
  /** Times of the latest pairing attempts on this host, oldest first (at most PAIR_BUDGET.attemptsPerWindow). */
  private readonly pairAttempts: number[] = [];

  constructor(opts: ControlStoreOptions) {
    this.file = opts.file;
    this.clock = opts.clock ?? systemClock;
    this.recorder = opts.recorder;
    this.db = openPrivateDb(opts.file);
    this.lockouts = new LockoutTable(this.db, this.clock, this.recorder);
  }

  /**
   * This host's control-API identity, generated once and kept in the store: every HMAC answer is
   * bound to it, so credentials paired here are useless against another host.
   */
  serverId(): string {
    const fresh = `cvm-${randomBytes(8).toString('hex')}`;
    this.db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('server_id', ?)").run(fresh);
    return (this.db.prepare("SELECT value FROM meta WHERE key = 'server_id'").get() as { value: string })
      .value;
  }

  /** A fresh single-use code (6 chars, no I/O/0/1) valid for 5 minutes; pairing grants `role`. */
  createPairingCode(opts: { role: Role; ttlMs?: number }): { code: string; expiresAt: number } {
    const role = roleSchema.parse(opts.role);
    const now = this.clock.now();
    const expiresAt = now + (opts.ttlMs ?? PAIRING_CODE_TTL_MS);
    this.db.prepare('DELETE FROM pairing_codes WHERE expires_at < ?').run(now - 24 * 3600_000);
    for (let attempt = 0; attempt < 10; attempt++) {
      let code = '';
      for (let i = 0; i < 6; i++) code += PAIRING_ALPHABET[randomInt(PAIRING_ALPHABET.length)];
      const res = this.db
        .prepare(
          'INSERT OR IGNORE INTO pairing_codes (code, role, created_at, expires_at) VALUES (?, ?, ?, ?)',
        )
        .run(code, role, now, expiresAt);
      if (res.changes === 1) return { code, expiresAt };
    }
    throw new CoworkError('internal', 'could not generate a unique pairing code; try again');
  }

  /**
   * Redeems a pairing code for `identity` (e.g. 'ip:1.2.3.4' or 'telegram:42'). Throws
   * CoworkError
   *  - 'invalidArgument' for a name with nothing printable left (nothing is counted);
   *  - 'limitExceeded' once the host took PAIR_BUDGET.attemptsPerWindow attempts in the window,
   *    or while `identity` is locked out (5 failures → 15 min). `lockIdentity: false` is for
   *    identities that are no identity at all — loopback addresses, which every local user can
   *    pick freely and all share — where a lock would only lock the owner out;
   *  - 'denied' for a wrong, expired, used or withdrawn code. That counts as a failure of the
   *    identity and against the budget of every live code (PAIR_BUDGET.codeMaxFailures).
   */
  redeemPairingCode(opts: {
    code: string;
    identity: string;
    lockIdentity?: boolean;
    name: string;
    channel: string;
    channelUser?: string;
  }): {
    device: DeviceRecord;
    key?: Buffer;
  } {
    const name = sanitizeDeviceName(opts.name);
    const lockKey = opts.lockIdentity === false ? undefined : `pair:${opts.identity}`;
    const now = this.clock.now();
    // A locked identity is refused before it can use up the host-wide window.
    if (lockKey) this.lockouts.assertNotLocked('pair', lockKey, 'pairing');
    this.takePairingAttempt(now);
    const parsed = pairingCodeSchema.safeParse(opts.code);
    const row = parsed.success
      ? (this.db.prepare('SELECT * FROM pairing_codes WHERE code = ?').get(parsed.data) as
          | { code: string; role: string; expires_at: number; used_at: number | null; failures: number }
          | undefined)
      : undefined;
    const reason = !row
      ? 'unknown code'
      : row.used_at !== null
        ? 'code already used'
        : row.expires_at <= now
          ? 'code expired'
          : row.failures >= PAIR_BUDGET.codeMaxFailures
            ? 'code withdrawn after too many wrong attempts'
            : null;
    if (reason || !row) {
      recordSafely(this.recorder, {
        type: 'control.pair_failed',
        identity: opts.identity,
        reason: reason ?? 'unknown code',
      });
      this.spendCodeBudgets(now);
      const lock = lockKey ? this.lockouts.recordFailure('pair', lockKey, PAIR_LOCKOUT) : undefined;
      if (lock?.locked) {
        throw new CoworkError(
          'limitExceeded',
          `too many wrong pairing codes; pairing is locked until ${new Date(lock.until).toISOString()}`,
        );
      }
      throw new CoworkError('denied', NOT_VALID);
    }
    const id = randomBytes(5).toString('hex');
    const key = opts.channel === 'control' ? randomBytes(32) : null;
    const role = roleSchema.parse(row.role);
    const tx = this.db.transaction(() => {
      const used = this.db
        .prepare('UPDATE pairing_codes SET used_at = ?, used_by = ? WHERE code = ? AND used_at IS NULL')
        .run(now, id, row.code);
      if (used.changes !== 1) throw new CoworkError('denied', 'pairing code already used; ask for a new one');
      if (opts.channelUser !== undefined) {
        // Re-pairing a channel user replaces their previous registration.
        this.db
          .prepare(
            'UPDATE devices SET revoked_at = ?, revoked_by = ? WHERE channel = ? AND channel_user = ? AND revoked_at IS NULL',
          )
          .run(now, 're-paired', opts.channel, opts.channelUser);
      }
      this.db
        .prepare(
          'INSERT INTO devices (id, name, role, channel, channel_user, key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
        )
        .run(id, name, role, opts.channel, opts.channelUser ?? null, key, now);
    });
    tx();
    if (lockKey) this.lockouts.clear(lockKey);
    const device = this.getDevice(id)!;
    recordSafely(this.recorder, {
      type: 'control.paired',
      identity: opts.identity,
      deviceId: id,
      name,
      role,
      channel: opts.channel,
    });
    return key ? { device, key } : { device };
  }

  /**
   * A device the host registers for itself, without a pairing code and without a key (so it can
   * never authenticate on the control API): the owner's dashboard logins, one per role, which
   * `devices.revoke` ends like any other. Returns the active one if it exists.
   */
  ensureHostDevice(opts: { channel: string; channelUser: string; name: string; role: Role }): DeviceRecord {
    const found = this.findChannelUser(opts.channel, opts.channelUser);
    if (found) return found;
    const id = randomBytes(5).toString('hex');
    const name = sanitizeDeviceName(opts.name);
    const role = roleSchema.parse(opts.role);
    this.db
      .prepare(
        'INSERT INTO devices (id, name, role, channel, channel_user, key, created_at) VALUES (?, ?, ?, ?, ?, NULL, ?)',
      )
      .run(id, name, role, opts.channel, opts.channelUser, this.clock.now());
    recordSafely(this.recorder, {
      type: 'control.paired',
      identity: 'host',
      deviceId: id,
      name,
      role,
      channel: opts.channel,
    });
    return this.getDevice(id)!;
  }

  /** Counts one attempt against the host-wide window; refuses when the window is full. */
  private takePairingAttempt(now: number): void {
    const { attemptsPerWindow, windowMs } = PAIR_BUDGET;
    while (this.pairAttempts.length > 0 && now - this.pairAttempts[0]! >= windowMs) this.pairAttempts.shift();
    if (this.pairAttempts.length >= attemptsPerWindow) {
      recordSafely(this.recorder, { type: 'control.refused_locked', scope: 'pair', key: 'pair:host' });
      const wait = Math.max(1, Math.ceil((this.pairAttempts[0]! + windowMs - now) / 1000));
      throw new CoworkError(
        'limitExceeded',
        `${HOST_LIMIT_PREFIX} (at most ${attemptsPerWindow} a minute, from anyone); try again in ${wait} s`,
      );
    }
    this.pairAttempts.push(now);
  }

  /** A wrong attempt, from anyone: every live code gets one failure closer to being withdrawn. */
  private spendCodeBudgets(now: number): void {
    const max = PAIR_BUDGET.codeMaxFailures;
    const live = 'used_at IS NULL AND expires_at > ? AND failures < ?';
    const tx = this.db.transaction(() => {
      const dying = this.db
        .prepare(`SELECT expires_at FROM pairing_codes WHERE ${live} AND failures = ?`)
        .all(now, max, max - 1) as { expires_at: number }[];
      this.db.prepare(`UPDATE pairing_codes SET failures = failures + 1 WHERE ${live}`).run(now, max);
      return dying;
    });
    for (const d of tx()) {
      // The code itself is never logged: the event says only that one was withdrawn.
      recordSafely(this.recorder, {
        type: 'control.lockout',
        scope: 'pair',
        key: 'pair:code',
        until: d.expires_at,
      });
    }
  }

  getDevice(id: string): DeviceRecord | undefined {
    const row = this.db.prepare('SELECT * FROM devices WHERE id = ?').get(id) as DeviceRow | undefined;
    return row ? toDevice(row) : undefined;
  }

  /** The HMAC key of an active (not revoked) control device, or undefined. */
  deviceKey(id: string): Buffer | undefined {
    const row = this.db
      .prepare("SELECT key FROM devices WHERE id = ? AND channel = 'control' AND revoked_at IS NULL")
      .get(id) as { key: Buffer | null } | undefined;
    return row?.key ?? undefined;
  }

  /** The active registration of a channel user (e.g. a paired Telegram user). */
  findChannelUser(channel: string, user: string): DeviceRecord | undefined {
    const row = this.db
      .prepare('SELECT * FROM devices WHERE channel = ? AND channel_user = ? AND revoked_at IS NULL')
      .get(channel, user) as DeviceRow | undefined;
    return row ? toDevice(row) : undefined;
  }

  listDevices(opts: { includeRevoked?: boolean } = {}): DeviceRecord[] {
    const sql = opts.includeRevoked
      ? 'SELECT * FROM devices ORDER BY created_at, id'
      : 'SELECT * FROM devices WHERE revoked_at IS NULL ORDER BY created_at, id';
    return (this.db.prepare(sql).all() as DeviceRow[]).map(toDevice);
  }

  isActive(id: string): boolean {
    return this.db.prepare('SELECT 1 FROM devices WHERE id = ? AND revoked_at IS NULL').get(id) !== undefined;
  }

  touchDevice(id: string): void {
    this.db.prepare('UPDATE devices SET last_seen_at = ? WHERE id = ?').run(this.clock.now(), id);
  }

  /** Revokes a device now; in-process servers close its sessions immediately (see onRevoke). */
  revokeDevice(id: string, by = 'cli'): DeviceRecord {
    const res = this.db
      .prepare(
        'UPDATE devices SET revoked_at = ?, revoked_by = ?, key = NULL WHERE id = ? AND revoked_at IS NULL',
      )
      .run(this.clock.now(), by, id);
    if (res.changes !== 1) {
      const existing = this.getDevice(id);
      if (!existing)
        throw new CoworkError('notFound', `no device '${id}'; run \`cowork-vm devices\` to list them`);
      throw new CoworkError('invalidState', `device '${id}' is already revoked`);
    }
    recordSafely(this.recorder, { type: 'control.device_revoked', deviceId: id, by });
    this.emitter.emit('revoke', id);
    return this.getDevice(id)!;
  }

  onRevoke(listener: (deviceId: string) => void): () => void {
    this.emitter.on('revoke', listener);
    return () => this.emitter.off('revoke', listener);
  }

  close(): void {
    this.emitter.removeAllListeners();
    if (this.db.open) this.db.close();
  }
}
