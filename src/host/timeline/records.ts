import { z } from 'zod';
import { CoworkError } from '../errors.js';
import type { PolicyContextName } from '../policy/types.js';
import type { EventType, StoredEvent, TaskOutcome } from './events.js';

/** The Timeline's public shapes and the mapping between them and the SQLite rows. */

export type TaskStatus = 'running' | TaskOutcome;

/** A task as the CLI and the control API show it (same shape as api/controller.ts TaskSummary). */
export interface TaskRecord {
  id: string;
  title: string;
  context: PolicyContextName;
  origin: string;
  status: TaskStatus;
  outcome?: TaskOutcome;
  summary?: string;
  createdAt: string; // ISO 8601
  finishedAt?: string;
}

export interface EventQuery {
  taskId?: string;
  /** Only events with id > afterId (for polling / --follow). */
  afterId?: number;
  /** Exact types, or a family such as 'approval.*'. */
  types?: (EventType | `${string}.*`)[];
  /** At most this many, oldest first. Default 1000. */
  limit?: number;
  /** The newest `last` matching events (still returned oldest first). */
  last?: number;
}

export type EventListener = (event: StoredEvent) => void;

export interface TaskRow {
  id: string;
  title: string;
  context: string;
  origin: string;
  status: string;
  summary: string | null;
  created_at: number;
  finished_at: number | null;
}
export interface EventRow {
  id: number;
  ts: number;
  task_id: string | null;
  type: string;
  data: string;
}

export function typeMatcher(types: NonNullable<EventQuery['types']>): (type: string) => boolean {
  return (type) => types.some((t) => (t.endsWith('.*') ? type.startsWith(t.slice(0, -1)) : type === t));
}

export function toTask(r: TaskRow): TaskRecord {
  const status = r.status as TaskStatus;
  return {
    id: r.id,
    title: r.title,
    context: r.context as PolicyContextName,
    origin: r.origin,
    status,
    ...(status !== 'running' ? { outcome: status } : {}),
    ...(r.summary !== null ? { summary: r.summary } : {}),
    createdAt: new Date(r.created_at).toISOString(),
    ...(r.finished_at !== null ? { finishedAt: new Date(r.finished_at).toISOString() } : {}),
  };
}

export function toStored(r: EventRow): StoredEvent {
  return { id: r.id, ts: r.ts, taskId: r.task_id, type: r.type, data: JSON.parse(r.data) } as StoredEvent;
}

export function describeType(event: unknown): string {
  const t = (event as { type?: unknown } | null)?.type;
  return typeof t === 'string' ? t : '(no type)';
}

export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new CoworkError('invalidArgument', `${what} is invalid: ${z.prettifyError(r.error)}`);
  return r.data;
}
