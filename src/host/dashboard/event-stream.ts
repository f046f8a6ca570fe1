import type { ServerResponse } from 'node:http';
import { SUBSCRIPTIONS } from '../api/bindings.js';
import type { ControllerApi } from '../api/controller.js';

/**
 * One `GET /api/events` stream (Server-Sent Events) of one session, fed by the contract's own
 * subscriptions (`timeline.subscribe`, `tasks.events`) on the ControllerApi:
 *
 *   event: timeline   each timeline entry as recorded (the shape timeline.subscribe pushes)
 *   event: task       { taskId, type: 'text', text } | { taskId, type: 'finished', … }
 *   event: approvals  the whole pending list (approvals.list): once at the start, then after
 *                     every approval.asked / answered / timedout entry. Who answered is in
 *                     that timeline entry (`by`: 'terminal', 'cli', 'dashboard:<id>', …).
 *
 * Timeline events carry `id: <entry id>`; a client that reconnects with `Last-Event-ID` first
 * gets the entries it missed (one page). A comment line every `heartbeatMs` keeps proxies and the browser from giving up on a quiet
 * stream. A client that does not read is cut off once `maxBufferedBytes` are queued for it
 * (EventSource reconnects, and the page re-reads what it missed with timeline.query).
 */

export interface EventStreamOptions {
  heartbeatMs: number;
  maxBufferedBytes: number;
  /**
   * The id of the last timeline entry this client saw (EventSource sends `Last-Event-ID` when it
   * reconnects): the entries after it are sent first, up to one `timeline.query` page.
   */
  lastEventId?: number;
}

/** Entries replayed to a reconnecting client; a page that missed more re-reads with timeline.query. */
export const REPLAY_LIMIT = 1000;

const APPROVAL_ENTRY = /^approval\./;

export class DashboardEventStream {
  private readonly unsubscribe: (() => void)[] = [];
  private readonly heartbeat: NodeJS.Timeout;
  private approvalsQueued = false;
  private ended = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly api: ControllerApi,
    private readonly opts: EventStreamOptions,
    private readonly onEnd: () => void,
  ) {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.write('retry: 3000\n\n');
    res.on('close', () => this.end());
    this.heartbeat = setInterval(() => this.write(': keep-alive\n\n'), opts.heartbeatMs);
    this.heartbeat.unref();
    // Replayed and subscribed in one synchronous stretch: no entry can be recorded in between,
    // so nothing is lost or sent twice.
    if (opts.lastEventId !== undefined) {
      for (const entry of api.timelineQuery({ afterId: opts.lastEventId, limit: REPLAY_LIMIT }))
        this.sendEntry(entry as { id: number });
    }
    this.unsubscribe.push(
      SUBSCRIPTIONS['timeline.subscribe']({}, api, (entry) => {
        this.sendEntry(entry);
        if (APPROVAL_ENTRY.test(entry.type)) this.queueApprovals();
      }),
      SUBSCRIPTIONS['tasks.events']({}, api, (event) => this.send('task', event)),
    );
    this.sendApprovals();
  }

  /** Ends the stream (revoked, expired, shutting down, or the client left). Idempotent. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.heartbeat);
    for (const u of this.unsubscribe) u();
    this.res.end();
    this.onEnd();
  }

  private send(event: string, data: unknown): void {
    this.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  /** A timeline entry carries its id as the event id, so a reconnect can say where it stopped. */
  private sendEntry(entry: { id: number }): void {
    this.write(`id: ${entry.id}\nevent: timeline\ndata: ${JSON.stringify(entry)}\n\n`);
  }

  /**
   * approval.asked is recorded before the broker lists the approval (durable first), so the
   * list is read once the recording call has returned, and a burst of entries sends one list.
   */
  private queueApprovals(): void {
    if (this.approvalsQueued) return;
    this.approvalsQueued = true;
    setImmediate(() => {
      this.approvalsQueued = false;
      this.sendApprovals();
    });
  }

  private sendApprovals(): void {
    if (this.ended) return;
    this.send('approvals', this.api.approvalsList());
  }

  private write(chunk: string): void {
    if (this.ended) return;
    if (this.res.writableLength > this.opts.maxBufferedBytes) {
      this.end();
      return;
    }
    this.res.write(chunk);
  }
}
