import type Database from 'better-sqlite3';
import { CoworkError } from '../errors.js';

/** Bump when the tables change; add a step to MIGRATIONS that takes version N-1 to N. */
export const SCHEMA_VERSION = 1;

const MIGRATIONS: Record<number, string> = {
  1: `
    CREATE TABLE tasks (
      id          TEXT PRIMARY KEY,
      title       TEXT NOT NULL,
      context     TEXT NOT NULL,
      origin      TEXT NOT NULL,
      status      TEXT NOT NULL,
      summary     TEXT,
      created_at  INTEGER NOT NULL,
      finished_at INTEGER
    ) STRICT;
    CREATE INDEX tasks_created ON tasks(created_at);
    CREATE TABLE events (
      id      INTEGER PRIMARY KEY AUTOINCREMENT,
      ts      INTEGER NOT NULL,
      task_id TEXT REFERENCES tasks(id),
      type    TEXT NOT NULL,
      data    TEXT NOT NULL
    ) STRICT;
    CREATE INDEX events_task ON events(task_id, id);
    CREATE INDEX events_type ON events(type, id);
  `,
};

/**
 * Bring the database to SCHEMA_VERSION inside one transaction. A database written by a newer
 * cowork-vm is refused rather than misread.
 */
export function migrate(db: Database.Database, file: string, readonly: boolean): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw new CoworkError(
      'unsupported',
      `timeline ${file} has schema version ${version}, newer than this cowork-vm understands (${SCHEMA_VERSION}) — upgrade cowork-vm`,
    );
  }
  if (version === SCHEMA_VERSION) return;
  if (readonly) {
    throw new CoworkError(
      'invalidState',
      `timeline ${file} is not initialised (schema version ${version}) — start a sandbox in this workspace first`,
    );
  }
  db.transaction(() => {
    for (let v = version + 1; v <= SCHEMA_VERSION; v++) {
      const step = MIGRATIONS[v];
      if (!step) throw new CoworkError('internal', `no timeline migration to schema version ${v}`);
      db.exec(step);
    }
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}
