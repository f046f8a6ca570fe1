import type { ServerFrame } from './local-protocol.js';

/**
 * The client's check of a server frame, without zod: the CLI's `exec`/`status` path must start
 * at once and zod alone costs ~75 ms to load. It accepts exactly what `ServerFrame` (the zod
 * schema in local-protocol.ts, the source of truth the server is built on) accepts —
 * tests/unit/local-frames.test.ts checks the two agree, on a corpus and on random frames.
 * Returns undefined for anything else.
 */
export function parseServerFrame(value: unknown): ServerFrame | undefined {
  if (!isPlainObject(value) || typeof value.id !== 'number' || !Number.isFinite(value.id)) return undefined;
  switch (value.type) {
    case 'res':
      if (value.ok === true)
        return 'result' in value && onlyKeys(value, ['type', 'id', 'ok', 'result'])
          ? (value as ServerFrame)
          : undefined;
      if (value.ok !== false || !onlyKeys(value, ['type', 'id', 'ok', 'error'])) return undefined;
      return isPlainObject(value.error) &&
        onlyKeys(value.error, ['code', 'message']) &&
        typeof value.error.code === 'string' &&
        typeof value.error.message === 'string'
        ? (value as ServerFrame)
        : undefined;
    case 'stream':
      return onlyKeys(value, ['type', 'id', 'stream', 'data']) &&
        (value.stream === 'stdout' || value.stream === 'stderr') &&
        typeof value.data === 'string'
        ? (value as ServerFrame)
        : undefined;
    case 'event':
      return 'event' in value && onlyKeys(value, ['type', 'id', 'event'])
        ? (value as ServerFrame)
        : undefined;
    default:
      return undefined;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function onlyKeys(v: Record<string, unknown>, allowed: readonly string[]): boolean {
  return Object.keys(v).every((k) => allowed.includes(k));
}
