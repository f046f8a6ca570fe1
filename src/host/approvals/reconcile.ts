import type { StoredEvent, Timeline } from '../timeline/index.js';

export const RESTART_DENIAL_MESSAGE = 'the controller restarted before anyone answered';

/**
 * Call once at controller startup, before a broker takes requests on this timeline. Every
 * approval the timeline saw asked but never answered or timed out belonged to a controller that
 * died: the request that waited on it is gone, and the record must not look pending (or, worse,
 * be answerable) forever. Each is recorded as denied by 'restart'. Returns their ids.
 *
 * Ids are short and may repeat over time, so events are read in order: an answer settles the
 * most recent ask with that id that came before it.
 */
export function reconcileAfterRestart(timeline: Pick<Timeline, 'query' | 'record'>): string[] {
  const open = new Map<string, StoredEvent>();
  let afterId = 0;
  for (;;) {
    const batch = timeline.query({ types: ['approval.*'], afterId, limit: 5000 });
    for (const e of batch) {
      afterId = e.id;
      if (e.type === 'approval.asked') open.set(e.data.id, e);
      else if (e.type === 'approval.answered' || e.type === 'approval.timedout') open.delete(e.data.id);
    }
    if (batch.length < 5000) break;
  }
  for (const [id, asked] of open) {
    timeline.record(asked.taskId, {
      type: 'approval.answered',
      id,
      verdict: 'deny',
      by: 'restart',
      message: RESTART_DENIAL_MESSAGE,
    });
  }
  return [...open.keys()];
}
