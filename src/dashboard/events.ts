import type { LiveState } from './live.js';
import type { PendingApproval, TaskEvent, TimelineEntry } from './types.js';

/**
 * `GET /api/events` into the LiveState. EventSource reconnects by itself; after a reconnect the
 * server sends the pending list again and `refill` asks timeline.query for what was missed.
 */
export function connectEvents(live: LiveState, refill: () => void): () => void {
  const source = new EventSource('/api/events', { withCredentials: true });
  let wasLost = false;
  const parse = (ev: Event): unknown => {
    try {
      return JSON.parse((ev as MessageEvent<string>).data);
    } catch {
      return undefined;
    }
  };
  source.addEventListener('open', () => {
    live.setConnection('live');
    if (wasLost) refill();
    wasLost = false;
  });
  source.addEventListener('error', () => {
    wasLost = true;
    live.setConnection(source.readyState === EventSource.CLOSED ? 'lost' : 'connecting');
  });
  source.addEventListener('timeline', (ev) => {
    const e = parse(ev) as TimelineEntry | undefined;
    if (e && typeof e.id === 'number') live.addTimeline([e]);
  });
  source.addEventListener('task', (ev) => {
    const e = parse(ev) as TaskEvent | undefined;
    if (e && typeof e.taskId === 'string') live.addTaskEvent(e);
  });
  source.addEventListener('approvals', (ev) => {
    const list = parse(ev);
    if (Array.isArray(list)) live.setApprovals(list as PendingApproval[]);
  });
  return () => source.close();
}
