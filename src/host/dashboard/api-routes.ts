import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { METHODS, methodsOf, type RemoteMethodName } from '../api/contract.js';
import type { ControllerApi } from '../api/controller.js';
import { roleAllows } from '../api/roles.js';
import { type MethodContext, prepareCall, storeDevices } from '../control/methods.js';
import type { ControlStore, DeviceRecord } from '../control/store.js';
import { CoworkError } from '../errors.js';
import { CSRF_HEADER, readBody, sendError, sendJson } from './http.js';
import type { DashboardSession } from './sessions.js';

/**
 * `GET /api/session` and `POST /api/call/<method>`: the dashboard's adapter of the contract.
 * A call runs through the WebSocket API's own adapter (`prepareCall`: method offered remotely,
 * role, params — in that order) with origin `dashboard:<deviceId>` in the `gateway` context,
 * exactly like a paired device's call would. The per-connection subscription methods are
 * left out: `GET /api/events` is the dashboard's subscription.
 */

const NOT_HERE = new Set<string>(['timeline.subscribe', 'timeline.unsubscribe']);

/** The methods `POST /api/call/<method>` offers, in the contract's order. */
export const DASHBOARD_METHODS: RemoteMethodName[] = methodsOf('remote').filter((m) => !NOT_HERE.has(m));

/** Largest body of a call (a command of 100,000 characters plus 1 MiB of stdin fits). */
export const MAX_CALL_BODY_BYTES = 2 * 1024 * 1024;

/** An authenticated request: the session and its device as the store has it now. */
export interface Caller {
  session: DashboardSession;
  device: DeviceRecord;
}

export function sessionInfo(c: Caller): {
  deviceId: string;
  deviceName: string;
  role: string;
  csrf: string;
  methods: string[];
} {
  return {
    deviceId: c.device.id,
    deviceName: c.device.name,
    role: c.device.role,
    csrf: c.session.csrf,
    methods: DASHBOARD_METHODS.filter((m) => roleAllows(c.device.role, METHODS[m].minRole)),
  };
}

/** The CSRF header equals the session's token (compared in constant time). */
export function csrfMatches(req: IncomingMessage, session: DashboardSession): boolean {
  const sent = req.headers[CSRF_HEADER];
  if (typeof sent !== 'string') return false;
  const a = Buffer.from(sent);
  const b = Buffer.from(session.csrf);
  return a.length === b.length && timingSafeEqual(a, b);
}

function isJson(req: IncomingMessage): boolean {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  return type === 'application/json';
}

async function readParams(req: IncomingMessage): Promise<Record<string, unknown>> {
  const body = (await readBody(req, MAX_CALL_BODY_BYTES)).toString('utf8');
  if (body.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new CoworkError('invalidArgument', 'the request body is not valid JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new CoworkError('invalidArgument', "the request body must be a JSON object: the method's params");
  return parsed as Record<string, unknown>;
}

/** One call; the answer is `{ result }` or `{ error: { code, message } }` with its status. */
export async function handleCall(
  req: IncomingMessage,
  res: ServerResponse,
  name: string,
  caller: Caller,
  deps: { api: ControllerApi; store: ControlStore },
): Promise<void> {
  if (!isJson(req)) {
    sendError(
      res,
      new CoworkError('invalidArgument', 'send the params as Content-Type: application/json'),
      415,
    );
    return;
  }
  if (!(DASHBOARD_METHODS as string[]).includes(name)) {
    const hint = NOT_HERE.has(name) ? ' (live events come from GET /api/events)' : '';
    const known = DASHBOARD_METHODS.join(', ');
    sendError(
      res,
      new CoworkError('notFound', `unknown method '${name.slice(0, 64)}'${hint}; known: ${known}`),
    );
    return;
  }
  let params: Record<string, unknown>;
  try {
    params = await readParams(req);
  } catch (err) {
    sendError(res, err, CoworkError.is(err, 'limitExceeded') ? 413 : undefined);
    return;
  }
  const prepared = prepareCall(name, params, caller.device.role);
  if (!prepared.ok) {
    sendError(res, prepared.error);
    return;
  }
  // A caller that goes away cancels what it started (an exec waiting for its approval, say).
  const abort = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) abort.abort(new CoworkError('cancelled', 'the dashboard request was closed'));
  });
  try {
    const result = await prepared.run(methodContext(caller.device.id, deps, abort.signal));
    sendJson(res, 200, { result: result ?? null });
  } catch (err) {
    sendError(res, err);
  }
}

function methodContext(
  deviceId: string,
  deps: { api: ControllerApi; store: ControlStore },
  signal: AbortSignal,
): MethodContext {
  const { api, store } = deps;
  const noSubscription = (): never => {
    throw new CoworkError('unsupported', 'subscribe with GET /api/events');
  };
  return {
    api,
    // Built here, never taken from the request: a browser cannot choose who it is.
    origin: { id: `dashboard:${deviceId}`, context: 'gateway' },
    deviceId,
    devices: storeDevices(store),
    subscribeTimeline: noSubscription,
    unsubscribeTimeline: noSubscription,
    signal,
    // `exec`'s `stream: true` has no channel on a request/response call: the output comes in the result.
    emit: () => {},
    requestId: '',
  };
}
