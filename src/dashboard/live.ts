import type { PendingApproval, TaskEvent, TimelineEntry, VerdictKind } from './types.js';

/** How an approval ended, from the timeline's approval.answered / approval.timedout. */
export interface Answer {
  verdict: VerdictKind;
  by: string;
  message?: string;
}

export type Connection = 'connecting' | 'live' | 'lost';

type Listeners = {
  timeline: (entry: TimelineEntry) => void;
  task: (event: TaskEvent) => void;
  approvals: (list: PendingApproval[]) => void;
  connection: (state: Connection) => void;
};

/** Timeline entries kept in the page; older ones are dropped (a page asks timeline.query for more). */
export const TIMELINE_KEEP = 5000;

/**
 * What the page knows right now, fed by /api/events and the first timeline.query pages. Pure
 * (no DOM, no network): pages subscribe and redraw their own part. One object per page load,
 * no module-level state.
 */
export class LiveState {
  approvals: PendingApproval[] = [];
  /** Approval id → how it was answered (by whom: 'terminal', 'cli', 'dashboard:…', 'timeout'). */
  readonly answers = new Map<string, Answer>();
  timeline: TimelineEntry[] = [];
  /** Model text streamed since this page loaded, per task. */
  readonly taskText = new Map<string, string>();
  readonly finished = new Map<string, string>();
  connection: Connection = 'connecting';
  private readonly seen = new Set<number>();
  private readonly listeners: { [K in keyof Listeners]: Set<Listeners[K]> } = {
    timeline: new Set(),
    task: new Set(),
    approvals: new Set(),
    connection: new Set(),
  };

  on<K extends keyof Listeners>(kind: K, fn: Listeners[K]): () => void {
    this.listeners[kind].add(fn);
    return () => this.listeners[kind].delete(fn);
  }

  /** Adds timeline entries (live or from a query); an id seen before is ignored. */
  addTimeline(entries: TimelineEntry[]): void {
    const fresh = entries.filter((e) => !this.seen.has(e.id));
    if (fresh.length === 0) return;
    for (const e of fresh) {
      this.seen.add(e.id);
      this.noteAnswer(e);
    }
    // Live entries can arrive before the history query that covers older ids: keep id order.
    let last = this.timeline.at(-1)?.id ?? -1;
    let ordered = true;
    for (const e of fresh) {
      if (e.id < last) ordered = false;
      last = e.id;
    }
    this.timeline.push(...fresh);
    if (!ordered) this.timeline.sort((a, b) => a.id - b.id);
    if (this.timeline.length > TIMELINE_KEEP) {
      for (const e of this.timeline.splice(0, this.timeline.length - TIMELINE_KEEP)) this.seen.delete(e.id);
    }
    for (const e of fresh) for (const fn of this.listeners.timeline) fn(e);
  }

  addTaskEvent(ev: TaskEvent): void {
    if (ev.type === 'text') this.taskText.set(ev.taskId, (this.taskText.get(ev.taskId) ?? '') + ev.text);
    else this.finished.set(ev.taskId, ev.outcome);
    for (const fn of this.listeners.task) fn(ev);
  }

  setApprovals(list: PendingApproval[]): void {
    this.approvals = list;
    for (const fn of this.listeners.approvals) fn(list);
  }

  setConnection(state: Connection): void {
    this.connection = state;
    for (const fn of this.listeners.connection) fn(state);
  }

  entriesOf(taskId: string): TimelineEntry[] {
    return this.timeline.filter((e) => e.taskId === taskId);
  }

  private noteAnswer(e: TimelineEntry): void {
    const d = e.data;
    if ((e.type === 'approval.answered' || e.type === 'approval.timedout') && typeof d.id === 'string') {
      this.answers.set(d.id, {
        verdict: (d.verdict as VerdictKind) ?? 'deny',
        by: String(d.by ?? 'unknown'),
        ...(typeof d.message === 'string' ? { message: d.message } : {}),
      });
    }
  }
}
