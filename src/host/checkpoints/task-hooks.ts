import { CHANGE_LINES_CAP } from '../timeline/events.js';
import type { Timeline } from '../timeline/index.js';
import { describeChange } from './changes.js';
import type { CheckpointDiff, CheckpointRecord, CheckpointStore } from './store.js';

/**
 * The checkpoint around a unit of agent work, recorded in the timeline: `checkpoint.created`
 * before it, `workspace.changes` (its change set, shell side effects included) after it.
 * The task runner and the Controller call these; the store does the work.
 */
export class TaskCheckpoints {
  constructor(
    readonly store: CheckpointStore,
    private readonly timeline?: Pick<Timeline, 'record'>,
  ) {}

  async before(meta: {
    id?: string;
    kind: CheckpointRecord['kind'];
    label: string;
    taskId?: string;
  }): Promise<CheckpointRecord> {
    const rec = await this.store.begin(meta);
    this.timeline?.record(meta.taskId ?? null, {
      type: 'checkpoint.created',
      checkpoint: rec.id,
      kind: rec.kind,
      label: rec.label.slice(0, 200),
      tree: rec.before.tree,
      files: rec.before.files,
      skipped: rec.before.skippedFiles,
    });
    return rec;
  }

  async after(id: string, taskId?: string): Promise<CheckpointDiff> {
    const d = await this.store.finish(id);
    const link = (oid: string) => this.store.blob(oid).toString('utf8');
    const lines = d.changes.slice(0, CHANGE_LINES_CAP).map((c) => describeChange(c, link));
    this.timeline?.record(taskId ?? null, {
      type: 'workspace.changes',
      checkpoint: id,
      counts: d.counts,
      changes: lines,
      ...(d.changes.length > CHANGE_LINES_CAP ? { changesTruncated: true } : {}),
      skipped: d.skipped.slice(0, 50),
    });
    return d;
  }

  /**
   * `id`'s patch (what `cowork-vm diff` prints), at most `maxBytes` of it: for the dashboard's task
   * page. `live`: the work never recorded its end, so this is compared with the workspace now.
   */
  async patch(
    id: string,
    maxBytes: number,
  ): Promise<{ checkpoint: string; patch: string; truncated: boolean; live: boolean }> {
    const d = await this.store.diff(id);
    const full = await this.store.patch(d);
    const bytes = Buffer.from(full, 'utf8');
    const truncated = bytes.length > maxBytes;
    // Cut at a line end inside the cap, so no half line (or half character) is shown.
    const kept = truncated
      ? bytes
          .subarray(0, maxBytes)
          .toString('utf8')
          .replace(/[^\n]*$/, '')
      : full;
    return { checkpoint: id, patch: kept, truncated, live: d.live };
  }
}
