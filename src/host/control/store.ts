import { randomBytes, randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { CoworkError } from '../errors.js';
import type { HostPaths } from '../paths.js';
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
  used_by TEXT
);
`;

function toDevice(r: DeviceRow): DeviceRecord {
  return {
    id: r.id,
    name: r.name,
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
   * CoworkError 'limitExceeded' while that identity is locked out (5 failures → 15 min), and
   * 'denied' for a wrong, expired or used code (which counts as a failure).
   */
  redeemPairingCode(opts: {
    code: string;
    identity: string;
    name: string;
    channel: string;
    channelUser?: string;
  }): {
    device: DeviceRecord;
    key?: Buffer;
  } {
    const lockKey = `pair:${opts.identity}`;
    this.lockouts.assertNotLocked('pair', lockKey, 'pairing');
    const parsed = pairingCodeSchema.safeParse(opts.code);
    const now = this.clock.now();
    const row = parsed.success
      ? (this.db.prepare('SELECT * FROM pairing_codes WHERE code = ?').get(parsed.data) as
          | { code: string; role: string; expires_at: number; used_at: number | null }
          | undefined)
      : undefined;
    const reason = !row
      ? 'unknown code'
      : row.used_at !== null
        ? 'code already used'
        : row.expires_at <= now
          ? 'code expired'
          : null;
    if (reason || !row) {
      recordSafely(this.recorder, {
        type: 'control.pair_failed',
        identity: opts.identity,
        reason: reason ?? 'unknown code',
      });
      const lock = this.lockouts.recordFailure('pair', lockKey, PAIR_LOCKOUT);
      if (lock.locked) {
        throw new CoworkError(
          'limitExceeded',
          `too many wrong pairing codes; pairing is locked until ${new Date(lock.until).toISOString()}`,
        );
      }
      throw new CoworkError(
        'denied',
        'pairing code not valid (wrong, expired or already used); run `cowork-vm pair` on the host for a new one',
      );
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
        .run(id, opts.name, role, opts.channel, opts.channelUser ?? null, key, now);
    });
    tx();
    this.lockouts.clear(lockKey);
    const device = this.getDevice(id)!;
    recordSafely(this.recorder, {
      type: 'control.paired',
      identity: opts.identity,
      deviceId: id,
      name: opts.name,
      role,
      channel: opts.channel,
    });
    return key ? { device, key } : { device };
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
