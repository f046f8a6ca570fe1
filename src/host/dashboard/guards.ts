import type { IncomingMessage, ServerResponse } from 'node:http';
import { FixedWindowLimiter } from '../channels/rate-limit.js';
import { type Clock, recordSafely, type SecurityRecorder } from '../control/events.js';
import { normalizeIp } from '../control/net.js';
import type { ControlStore } from '../control/store.js';
import { CoworkError } from '../errors.js';
import { type Caller, csrfMatches } from './api-routes.js';
import { LOGIN_HINT, readCookie, sendError } from './http.js';
import type { DashboardAuth } from './sessions.js';

/**
 * What an API request must show before anything runs, checked in this order:
 *
 *   read  (GET /api/session, /api/events):  Origin ours if sent → session → rate
 *   write (POST /api/call/…):                Origin ours, required → session → rate → CSRF token
 *
 * "Ours" is `http://<the Host the request named>`, and the server has already refused any Host
 * but 127.0.0.1:<port> and localhost:<port>. A session counts only while its device is active
 * in the store: a revoked device's session ends at its next request even if no revoke event
 * reached this process.
 */
export class RequestGuard {
  /** API requests per session, in one-minute windows. */
  private readonly rate: FixedWindowLimiter;

  constructor(
    private readonly deps: {
      auth: DashboardAuth;
      devices: () => ControlStore;
      clock: Clock;
      recorder: SecurityRecorder | undefined;
      requestsPerMinute: number;
      /** The session cookie's name (it names the server's port). */
      cookieName: () => string;
    },
  ) {
    this.rate = new FixedWindowLimiter(deps.requestsPerMinute, 60_000, deps.clock);
  }

  /** A session whose device is still active, or undefined (and the session ends if it is not). */
  authenticate(req: IncomingMessage): Caller | undefined {
    const { auth } = this.deps;
    const session = auth.session(readCookie(req, this.deps.cookieName()));
    if (!session) return undefined;
    const device = this.deps.devices().getDevice(session.deviceId);
    if (!device || device.revokedAt !== undefined) {
      auth.endDevice(session.deviceId);
      return undefined;
    }
    return { session, device };
  }

  /** GETs of the API; browsers leave Origin out of same-origin GETs, so it is checked only when sent. */
  read(req: IncomingMessage, res: ServerResponse): Caller | undefined {
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== ownOrigin(req)) return this.refuseOrigin(req, res);
    return this.session(req, res);
  }

  write(req: IncomingMessage, res: ServerResponse): Caller | undefined {
    if (req.headers.origin !== ownOrigin(req)) return this.refuseOrigin(req, res);
    const caller = this.session(req, res);
    if (!caller) return undefined;
    if (!csrfMatches(req, caller.session)) {
      const e = new CoworkError('denied', 'missing or wrong X-Cowork-CSRF header (from GET /api/session)');
      sendError(res, e);
      return undefined;
    }
    return caller;
  }

  /** The session ended: forget its window. */
  forget(sessionId: string): void {
    this.rate.forget(sessionId);
  }

  private session(req: IncomingMessage, res: ServerResponse): Caller | undefined {
    const caller = this.authenticate(req);
    if (!caller) {
      sendError(res, new CoworkError('denied', `not logged in. ${LOGIN_HINT}`), 401);
      return undefined;
    }
    const wait = this.overRate(caller.session.id);
    if (wait !== undefined) {
      const limit = this.deps.requestsPerMinute;
      const e = new CoworkError(
        'limitExceeded',
        `rate limit: more than ${limit} requests in a minute; retry in ${wait} s`,
      );
      sendError(res, e, 429, { 'Retry-After': String(wait) });
      return undefined;
    }
    return caller;
  }

  /** A fixed one-minute window per session, by the injected clock; the seconds to wait when over it. */
  private overRate(sessionId: string): number | undefined {
    const hit = this.rate.hit(sessionId);
    return hit.allowed ? undefined : hit.retryAfterS;
  }

  private refuseOrigin(req: IncomingMessage, res: ServerResponse): undefined {
    const origin = String(req.headers.origin ?? '(none)').slice(0, 200);
    recordSafely(this.deps.recorder, {
      type: 'control.origin_refused',
      ip: normalizeIp(req.socket.remoteAddress),
      origin,
    });
    const e = new CoworkError(
      'denied',
      `requests from origin ${origin} are refused; writes need ${ownOrigin(req)}`,
    );
    sendError(res, e);
    return undefined;
  }
}

/** The origin this request was sent to (its Host was checked first). */
function ownOrigin(req: IncomingMessage): string {
  return `http://${(req.headers.host ?? '').toLowerCase()}`;
}
