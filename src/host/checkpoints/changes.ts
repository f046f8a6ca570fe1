import { escapeControl } from '../timeline/format.js';
import type { FileState, SkippedFile, Snapshot } from './snapshot.js';

/** What happened to one path between two checkpoints. */
export interface Change {
  path: string;
  /** created / deleted / modified (bytes or link target) / mode (permission bits only) / type (file ↔ link). */
  change: 'created' | 'deleted' | 'modified' | 'mode' | 'type';
  before?: FileState;
  after?: FileState;
  binary: boolean;
}

export interface ChangeSet {
  changes: Change[];
  /** Files neither checkpoint could store (too large, not a file), so changes to them are unknown. */
  skipped: SkippedFile[];
  counts: Record<Change['change'], number>;
}

export function sameState(a: FileState | undefined, b: FileState | undefined): boolean {
  if (!a || !b) return a === b;
  return a.kind === b.kind && a.oid === b.oid && a.mode === b.mode;
}

/**
 * The change set from `before` to `after`, sorted by path. `touched`: the only paths that can
 * differ (after was made from before by re-reading just those), so the rest are not compared.
 */
export function changeSet(before: Snapshot, after: Snapshot, touched?: Iterable<string>): ChangeSet {
  const changes: Change[] = [];
  const paths = new Set(touched ?? [...before.files.keys(), ...after.files.keys()]);
  for (const path of [...paths].sort()) {
    const b = before.files.get(path);
    const a = after.files.get(path);
    if (sameState(b, a)) continue;
    const change: Change['change'] = !b
      ? 'created'
      : !a
        ? 'deleted'
        : b.kind !== a.kind
          ? 'type'
          : b.oid !== a.oid
            ? 'modified'
            : 'mode';
    changes.push({
      path,
      change,
      ...(b ? { before: b } : {}),
      ...(a ? { after: a } : {}),
      binary: Boolean(b?.binary || a?.binary),
    });
  }
  const skipped = new Map<string, SkippedFile>();
  for (const s of [...before.skipped, ...after.skipped]) skipped.set(s.path, s);
  const counts = { created: 0, deleted: 0, modified: 0, mode: 0, type: 0 };
  for (const c of changes) counts[c.change] += 1;
  return { changes, skipped: [...skipped.values()], counts };
}

const LETTER: Record<Change['change'], string> = {
  created: 'A',
  deleted: 'D',
  modified: 'M',
  mode: 'm',
  type: 'T',
};

/**
 * One line per change: `M  src/a.ts`, `m  run.sh (644 → 755)`, `A  link -> target`. Names come
 * from the guest: control characters are made visible, so a line cannot rewrite a terminal.
 */
export function describeChange(c: Change, linkTarget?: (oid: string) => string): string {
  const mode = (s?: FileState) => (s ? (s.kind === 'link' ? 'link' : (s.mode & 0o7777).toString(8)) : '');
  const modes =
    c.before && c.after && (c.before.mode !== c.after.mode || c.before.kind !== c.after.kind)
      ? ` (${mode(c.before)} → ${mode(c.after)})`
      : '';
  const target = c.after?.kind === 'link' && linkTarget ? ` -> ${linkTarget(c.after.oid)}` : '';
  return escapeControl(`${LETTER[c.change]}  ${c.path}${target}${modes}${c.binary ? ' [binary]' : ''}`);
}

export function countsLine(counts: ChangeSet['counts']): string {
  const parts = (Object.entries(counts) as [Change['change'], number][])
    .filter(([, n]) => n > 0)
    .map(
      ([k, n]) =>
        `${n} ${k === 'mode' ? 'mode change' : k === 'type' ? 'type change' : k}${n > 1 && (k === 'mode' || k === 'type') ? 's' : ''}`,
    );
  return parts.length ? parts.join(', ') : 'no changes';
}
