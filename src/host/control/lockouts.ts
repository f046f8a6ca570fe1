import type Database from 'better-sqlite3';
import { CoworkError } from '../errors.js';
import { type Clock, recordSafely, type SecurityRecorder } from './events.js';

/**
 * Failure counters and lockouts, persisted in the device store so a controller restart does
 * not reset them. A key (e.g. 'auth:ip:127.0.0.1', 'pair:telegram:42') is locked for `lockMs`
 * once it collects `maxFailures` failures within `lockMs` of the first one; a success clears it.
 * Attempts refused while locked do not extend the lock (the lock ends at a predictable time).
 */
export interface LockoutPolicy {
  maxFailures: number;
  lockMs: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS lockouts (
  key TEXT PRIMARY KEY,
  failures INTEGER NOT NULL,
  first_failure_at INTEGER NOT NULL,
  locked_until INTEGER
);
`;

interface Row {
  key: string;
  failures: number;
  first_failure_at: number;
  locked_until: number | null;
}

export class LockoutTable {
  private writes = 0;
  constructor(
    private readonly db: Database.Database,
    private readonly clock: Clock,
    private readonly recorder?: SecurityRecorder,
  ) {
    db.exec(SCHEMA);
  }

  /** The time the lock on `key` ends, or undefined if it is not locked now. */
  lockedUntil(key: string): number | undefined {
    const row = this.db.prepare('SELECT * FROM lockouts WHERE key = ?').get(key) as Row | undefined;
    if (row?.locked_until != null && row.locked_until > this.clock.now()) return row.locked_until;
    return undefined;
  }

  /** Throws CoworkError('limitExceeded') while `key` is locked. */
  assertNotLocked(scope: 'auth' | 'pair', key: string, what: string): void {
    const until = this.lockedUntil(key);
    if (until === undefined) return;
    recordSafely(this.recorder, { type: 'control.refused_locked', scope, key });
    throw new CoworkError(
      'limitExceeded',
      `too many failed ${what} attempts; locked until ${new Date(until).toISOString()}. Wait, then try again.`,
    );
  }

  recordFailure(
    scope: 'auth' | 'pair',
    key: string,
    policy: LockoutPolicy,
  ): { locked: boolean; until: number } {
    const now = this.clock.now();
    if (++this.writes % 256 === 0) this.prune(now);
    const row = this.db.prepare('SELECT * FROM lockouts WHERE key = ?').get(key) as Row | undefined;
    const fresh =
      !row ||
      now - row.first_failure_at >= policy.lockMs ||
      (row.locked_until != null && row.locked_until <= now);
    const failures = fresh ? 1 : row.failures + 1;
    const first = fresh ? now : row.first_failure_at;
    const lockedUntil = failures >= policy.maxFailures ? now + policy.lockMs : null;
    this.db
      .prepare(
        `INSERT INTO lockouts (key, failures, first_failure_at, locked_until) VALUES (?, ?, ?, ?)
         ON CONFLICT(key) DO UPDATE SET failures = excluded.failures,
           first_failure_at = excluded.first_failure_at, locked_until = excluded.locked_until`,
      )
      .run(key, lockedUntil !== null ? 0 : failures, first, lockedUntil);
    if (lockedUntil !== null) {
      recordSafely(this.recorder, { type: 'control.lockout', scope, key, until: lockedUntil });
      return { locked: true, until: lockedUntil };
    }
    return { locked: false, until: 0 };
  }

  /**
   * Forgets counters no policy can still use (no lock running, first failure over an hour ago,
   * longer than any lockMs): rotating source addresses must not grow the table without end.
   */
  prune(now = this.clock.now()): void {
    this.db
      .prepare(
        'DELETE FROM lockouts WHERE first_failure_at < ? AND (locked_until IS NULL OR locked_until <= ?)',
      )
      .run(now - 3600_000, now);
  }

  clear(key: string): void {
    this.db.prepare('DELETE FROM lockouts WHERE key = ?').run(key);
  }
}
