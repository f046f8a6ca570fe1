import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { z } from 'zod';
import { CoworkError } from '../errors.js';
import { POLICY_CONTEXTS, type PolicyContextName } from '../policy/types.js';
import { type StoredEvent, type TaskOutcome, type TimelineEvent, timelineEventSchema } from './events.js';
import { capExcerpts } from './excerpt.js';
import { newTaskId } from './ids.js';
import {
  describeType,
  type EventListener,
  type EventQuery,
  type EventRow,
  parseOrThrow,
  type TaskRecord,
  type TaskRow,
  type TaskStatus,
  toStored,
  toTask,
  typeMatcher,
} from './records.js';
import { migrate } from './schema.js';

export interface TimelineOptions {
  /** Open for reading only (the CLI's `timeline` command while a controller writes). */
  readonly?: boolean;
  /** Cap for each `*Excerpt` field, in bytes of UTF-8. Default 4096. */
  excerptCapBytes?: number;
  /** FULL (default) also survives power loss; NORMAL survives process crashes (SIGKILL) only. */
  synchronous?: 'FULL' | 'NORMAL';
  /** Clock, for tests. */
  now?: () => number;
}

const createTaskSchema = z.strictObject({
  title: z.string().min(1),
  context: z.enum(POLICY_CONTEXTS),
  origin: z.string().min(1),
});

/**
 * The task timeline: one SQLite file per sandbox, WAL mode, every `record` its own committed
 * transaction. With synchronous=FULL (or NORMAL) in WAL mode a committed event survives the
 * controller being SIGKILLed; readers in other processes (the CLI) see it immediately.
 */
export class Timeline {
  readonly file: string;
  private readonly db: Database.Database;
  private readonly readonly: boolean;
  private readonly capBytes: number;
  private readonly now: () => number;
  private readonly listeners = new Set<EventListener>();
  /** Prepared statements by SQL text: the same few run on every record and poll. */
  private readonly statements = new Map<string, Database.Statement>();
  private closed = false;

  private constructor(file: string, db: Database.Database, opts: TimelineOptions) {
    this.file = file;
    this.db = db;
    this.readonly = opts.readonly ?? false;
    this.capBytes = opts.excerptCapBytes ?? 4096;
    this.now = opts.now ?? Date.now;
  }

  static open(file: string, opts: TimelineOptions = {}): Timeline {
    const readonly = opts.readonly ?? false;
    if (
      opts.excerptCapBytes !== undefined &&
      !(Number.isInteger(opts.excerptCapBytes) && opts.excerptCapBytes >= 0)
    ) {
      throw new CoworkError(
        'invalidArgument',
        `excerptCapBytes must be a non-negative integer, got ${opts.excerptCapBytes}`,
      );
    }
    let db: Database.Database;
    try {
      if (!readonly) mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      db = new Database(file, { readonly, fileMustExist: readonly });
    } catch (err) {
      const hint = readonly
        ? 'has a sandbox been started in this workspace?'
        : 'check that the state dir is writable';
      throw new CoworkError(
        'unavailable',
        `cannot open timeline ${file}: ${(err as Error).message} — ${hint}`,
        err,
      );
    }
    try {
      if (!readonly) {
        chmodSync(file, 0o600); // commands and output excerpts are private to this user
        db.pragma('journal_mode = WAL');
        db.pragma(`synchronous = ${opts.synchronous ?? 'FULL'}`);
      }
      db.pragma('foreign_keys = ON');
      db.pragma('busy_timeout = 5000');
      migrate(db, file, readonly);
    } catch (err) {
      db.close();
      throw CoworkError.from(err, 'unavailable', `cannot use timeline ${file}`);
    }
    return new Timeline(file, db, opts);
  }

  createTask(input: { title: string; context: PolicyContextName; origin: string }): TaskRecord {
    this.assertWritable();
    const t = parseOrThrow(createTaskSchema, input, 'task');
    const ts = this.now();
    for (let attempt = 0; ; attempt++) {
      const id = newTaskId();
      try {
        const event = this.db.transaction(() => {
          this.sql(
            'INSERT INTO tasks (id, title, context, origin, status, created_at) VALUES (?, ?, ?, ?, ?, ?)',
          ).run(id, t.title, t.context, t.origin, 'running', ts);
          return this.insertEvent(id, { type: 'task.started', ...t }, ts);
        })();
        this.emit(event);
        return this.getTask(id);
      } catch (err) {
        const collided = (err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
        if (!collided || attempt >= 5) throw CoworkError.from(err, 'internal', 'cannot create task');
      }
    }
  }

  finishTask(id: string, result: { outcome: TaskOutcome; summary?: string }): TaskRecord {
    this.assertWritable();
    const ts = this.now();
    const event = this.db
      .transaction(() => {
        const task = this.getTask(id);
        if (task.status !== 'running') {
          throw new CoworkError('invalidState', `task ${id} has already finished (${task.status})`);
        }
        this.sql('UPDATE tasks SET status = ?, summary = ?, finished_at = ? WHERE id = ?').run(
          result.outcome,
          result.summary ?? null,
          ts,
          id,
        );
        const data = result.summary === undefined ? {} : { summary: result.summary };
        return this.insertEvent(id, { type: 'task.finished', outcome: result.outcome, ...data }, ts);
      })
      .immediate();
    this.emit(event);
    return this.getTask(id);
  }

  /**
   * After a controller restart no task can still be running: mark each one failed with the
   * reason. Call once at startup, before creating tasks. Returns the ids it finished.
   */
  abandonRunningTasks(reason: string): string[] {
    const ids = this.listTasks({ status: 'running', limit: 10_000 }).map((t) => t.id);
    for (const id of ids) this.finishTask(id, { outcome: 'failed', summary: reason });
    return ids;
  }

  getTask(id: string): TaskRecord {
    this.assertOpen();
    const row = this.sql('SELECT * FROM tasks WHERE id = ?').get(id) as TaskRow | undefined;
    if (!row) throw new CoworkError('notFound', `no task ${id} — run \`cowork-vm timeline\` to list tasks`);
    return toTask(row);
  }

  /** Newest first. */
  listTasks(opts: { limit?: number; status?: TaskStatus } = {}): TaskRecord[] {
    this.assertOpen();
    const limit = opts.limit ?? 20;
    const rows = (
      opts.status
        ? this.sql('SELECT * FROM tasks WHERE status = ? ORDER BY created_at DESC, rowid DESC LIMIT ?').all(
            opts.status,
            limit,
          )
        : this.sql('SELECT * FROM tasks ORDER BY created_at DESC, rowid DESC LIMIT ?').all(limit)
    ) as TaskRow[];
    return rows.map(toTask);
  }

  /**
   * Validate, cap excerpts, commit, then tell in-process subscribers. Returns the stored event.
   * `taskId` must name an existing task (or be null for events outside any task).
   */
  record(taskId: string | null, event: TimelineEvent): StoredEvent {
    this.assertWritable();
    const parsed = parseOrThrow(timelineEventSchema, event, `timeline event ${describeType(event)}`);
    const capped = capExcerpts(parsed as Record<string, unknown>, this.capBytes) as TimelineEvent;
    let stored: StoredEvent;
    try {
      stored = this.insertEvent(taskId, capped, this.now());
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_FOREIGNKEY') {
        throw new CoworkError('notFound', `cannot record ${parsed.type}: no task ${taskId}`, err);
      }
      throw CoworkError.from(err, 'unavailable', `cannot record ${parsed.type} in timeline ${this.file}`);
    }
    this.emit(stored);
    return stored;
  }

  query(q: EventQuery = {}): StoredEvent[] {
    this.assertOpen();
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.taskId !== undefined) {
      where.push('task_id = ?');
      args.push(q.taskId);
    }
    if (q.afterId !== undefined) {
      where.push('id > ?');
      args.push(q.afterId);
    }
    if (q.types && q.types.length > 0) {
      const ors = q.types.map((t) => {
        if (t.endsWith('.*')) {
          // A prefix compare, not LIKE: '%' or '_' in the caller's text must not become wildcards.
          const prefix = t.slice(0, -1);
          args.push(prefix.length, prefix);
          return 'substr(type, 1, ?) = ?';
        }
        args.push(t);
        return 'type = ?';
      });
      where.push(`(${ors.join(' OR ')})`);
    }
    const clause = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
    let rows: EventRow[];
    if (q.last !== undefined) {
      const sql = `SELECT * FROM (SELECT * FROM events ${clause} ORDER BY id DESC LIMIT ?) ORDER BY id ASC`;
      rows = this.sql(sql).all(...args, q.last) as EventRow[];
    } else {
      const sql = `SELECT * FROM events ${clause} ORDER BY id ASC LIMIT ?`;
      rows = this.sql(sql).all(...args, q.limit ?? 1000) as EventRow[];
    }
    return rows.map(toStored);
  }

  /** Highest event id so far (0 when empty): start `follow` from here to see only new events. */
  lastEventId(): number {
    this.assertOpen();
    const row = this.sql('SELECT MAX(id) AS id FROM events').get() as { id: number | null };
    return row.id ?? 0;
  }

  /** In-process live events (after commit). Listeners must not throw; errors are swallowed. */
  subscribe(listener: EventListener): () => void {
    this.assertOpen();
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Poll for new events by id — works across processes (the CLI's `--follow`). Ends when the
   * signal aborts, or, with `untilTaskFinished` (needs `taskId`), once that task has finished:
   * after yielding its task.finished, or at once if it finished before `afterId`. `types` filters
   * what is yielded; the task's end is noticed either way.
   */
  async *follow(
    opts: Omit<EventQuery, 'last' | 'limit'> & {
      intervalMs?: number;
      signal?: AbortSignal;
      untilTaskFinished?: boolean;
    },
  ): AsyncGenerator<StoredEvent> {
    const { signal, taskId, types, untilTaskFinished } = opts;
    if (untilTaskFinished && taskId === undefined) {
      throw new CoworkError('invalidArgument', 'follow: untilTaskFinished needs a taskId');
    }
    const wanted = types && types.length > 0 ? typeMatcher(types) : () => true;
    const queryTypes =
      untilTaskFinished && types && types.length > 0 ? [...types, 'task.finished' as const] : types;
    let afterId = opts.afterId ?? 0;
    while (!signal?.aborted && !this.closed) {
      const batch = this.query({ taskId, types: queryTypes, afterId, limit: 500 });
      for (const e of batch) {
        afterId = e.id;
        if (wanted(e.type)) yield e;
        if (untilTaskFinished && e.type === 'task.finished' && e.taskId === taskId) return;
      }
      if (batch.length < 500) {
        if (untilTaskFinished && this.getTask(taskId!).status !== 'running') return;
        try {
          await sleep(opts.intervalMs ?? 250, undefined, { signal });
        } catch {
          return; // aborted
        }
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    this.db.close();
  }

  private sql(text: string): Database.Statement {
    let stmt = this.statements.get(text);
    if (!stmt) {
      if (this.statements.size >= 200) this.statements.clear(); // query() builds SQL per filter shape
      stmt = this.db.prepare(text);
      this.statements.set(text, stmt);
    }
    return stmt;
  }

  private insertEvent(taskId: string | null, event: TimelineEvent, ts: number): StoredEvent {
    const { type, ...data } = event;
    const info = this.sql('INSERT INTO events (ts, task_id, type, data) VALUES (?, ?, ?, ?)').run(
      ts,
      taskId,
      type,
      JSON.stringify(data),
    );
    return { id: Number(info.lastInsertRowid), ts, taskId, type, data } as StoredEvent;
  }

  private emit(event: StoredEvent): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch {
        // A broken subscriber must not make a committed event look failed to its recorder.
      }
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new CoworkError('invalidState', `timeline ${this.file} is closed`);
  }

  private assertWritable(): void {
    this.assertOpen();
    if (this.readonly) throw new CoworkError('invalidState', `timeline ${this.file} was opened read-only`);
  }
}
