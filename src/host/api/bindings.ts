import { z } from 'zod';
import { CoworkError } from '../errors.js';
import { buildMenu } from '../menu/build.js';
import { POLICY_CONTEXTS, type PolicyContextName } from '../policy/types.js';
import {
  type EventOf,
  isMethodName,
  METHODS,
  type MethodName,
  type Methods,
  type ParamsOf,
  type ParsedParamsOf,
  type ResultOf,
  type Transport,
} from './contract.js';
import type { ControllerApi, Origin, TaskLiveEvent } from './controller.js';
import type { Role } from './roles.js';

/**
 * How each method of the contract is carried out on the ControllerApi — the one binding every
 * transport dispatches through. A transport only frames: it builds the caller's origin, parses
 * the params with the contract's schema for its kind of caller, and delivers results and
 * events in its own wire format.
 */

/** What a binding gets from the transport besides the params. */
export interface CallContext {
  api: ControllerApi;
  /** Who is calling, built by the transport; never taken from the params. */
  origin: Origin;
  signal: AbortSignal;
  /** The caller's role, from the transport (the owner on the local socket is admin); absent = viewer. */
  role?: Role;
  /** Command output while it runs; absent when the caller did not ask for it. */
  onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  /** Events a call pushes while it runs (tools.call: the approval it waits for); absent = not wanted. */
  onEvent?: (event: unknown) => void;
}

/** Methods the ControllerApi serves (the rest act on a transport's own state: devices, its subscriptions). */
export type CallName = Exclude<
  MethodName,
  | 'timeline.subscribe'
  | 'tasks.events'
  | 'tools.session'
  | 'timeline.unsubscribe'
  | 'devices.list'
  | 'devices.revoke'
  | 'pair.create'
>;
type SubscriptionName = 'timeline.subscribe' | 'tasks.events' | 'tools.session';

type CallBinding<M extends MethodName> = (
  params: ParsedParamsOf<M>,
  ctx: CallContext,
) => Promise<ResultOf<M>> | ResultOf<M>;

/** Starts a subscription that pushes each event through `emit`; returns its end. */
type SubscriptionBinding<M extends MethodName> = (
  params: ParsedParamsOf<M>,
  api: ControllerApi,
  emit: (event: EventOf<M>) => void,
) => () => void;

const CONTEXT_RANK: Record<PolicyContextName, number> = { local: 0, agent: 1, gateway: 2 };

/**
 * The context a call runs in: the caller's, or a stricter one it asked for. Asking for a looser
 * one is refused, so no transport can let a remote caller decide like the user at the terminal.
 */
export function narrowContext(origin: Origin, requested: PolicyContextName | undefined): Origin {
  if (requested === undefined || requested === origin.context) return origin;
  if (CONTEXT_RANK[requested] < CONTEXT_RANK[origin.context]) {
    throw new CoworkError(
      'denied',
      `a caller in the '${origin.context}' policy context cannot ask for '${requested}'; allowed: ${POLICY_CONTEXTS.filter(
        (c) => CONTEXT_RANK[c] >= CONTEXT_RANK[origin.context],
      ).join(', ')}`,
    );
  }
  return { ...origin, context: requested };
}

export const CALLS: { [M in CallName]: CallBinding<M> } = {
  status: (_p, c) => c.api.status(),
  'tasks.list': (p, c) => c.api.tasksList(p),
  'tasks.get': (p, c) => c.api.tasksGet(p.id),
  'tasks.diff': (p, c) => offeredBy(c.api.tasksDiff, 'checkpoints').call(c.api, p.checkpoint),
  'tasks.start': (p, c) => {
    const { context, ...req } = p;
    return c.api.tasksStart(req, narrowContext(c.origin, context));
  },
  'tasks.cancel': (p, c) => {
    c.api.tasksCancel(p.id, c.origin);
    return { cancelled: p.id };
  },
  'timeline.query': (p, c) => c.api.timelineQuery(p) as ResultOf<'timeline.query'>,
  'approvals.list': (_p, c) => c.api.approvalsList(),
  'approvals.answer': (p, c) => {
    c.api.approvalsAnswer(p.id, { kind: p.kind, message: p.message }, c.origin);
    return { answered: p.id, kind: p.kind };
  },
  exec: (p, c) => {
    const { context, ...req } = p;
    const out = c.onOutput;
    const streams = out
      ? { onStdout: (b: Buffer) => out('stdout', b), onStderr: (b: Buffer) => out('stderr', b) }
      : {};
    return c.api.exec(req, narrowContext(c.origin, context), { signal: c.signal, ...streams });
  },
  // Built from the caller's own role, so an entry it may not use is never offered; a running
  // controller offers no workspaces to start (that is the stopped menu, built by the renderer).
  'menu.get': async (p, c) => {
    const status = await c.api.status();
    const pending = c.api.approvalsList();
    const role = c.role ?? 'viewer';
    // Open dashboard is offered when this controller serves one, unless the caller says it cannot open it.
    const dashboard = p.dashboard ?? Boolean(status.dashboard?.url);
    return buildMenu({ status, pending, recentWorkspaces: [], role, dashboard });
  },
  'policy.check': (p, c) => {
    const { context, ...req } = p;
    return offeredBy(c.api.policyCheck, 'policy checks').call(c.api, req, narrowContext(c.origin, context));
  },
  // `role` is owner-only: a device or a dashboard session always logs in as itself.
  'dashboard.login': (p, c) =>
    offeredBy(c.api.dashboardLogin, 'the dashboard').call(c.api, p.role ? { role: p.role } : {}, c.origin),
  'tools.list': (_p, c) => offeredBy(c.api.toolsList, 'tool sessions').call(c.api),
  'tools.call': (p, c) => {
    const emit = c.onEvent;
    return offeredBy(c.api.toolsCall, 'tool sessions').call(c.api, p, {
      signal: c.signal,
      ...(emit ? { onApproval: (a) => emit({ type: 'approval', ...a }) } : {}),
    });
  },
  'jobs.start': (p, c) => {
    const { context, ...req } = p;
    return offeredBy(c.api.jobsStart, 'background jobs').call(c.api, req, narrowContext(c.origin, context), {
      signal: c.signal,
    });
  },
  'jobs.list': (_p, c) => offeredBy(c.api.jobsList, 'background jobs').call(c.api),
  'jobs.logs': (p, c) => {
    const out = c.onOutput;
    return offeredBy(c.api.jobsLogs, 'background jobs').call(
      c.api,
      p.id,
      (chunk) => out?.(chunk.stream, chunk.data),
      { follow: p.follow, signal: c.signal },
    );
  },
  'jobs.kill': (p, c) => offeredBy(c.api.jobsKill, 'background jobs').call(c.api, p.id, c.origin),
  'forward.open': (p, c) => offeredBy(c.api.forwardOpen, 'port forwards').call(c.api, p, c.origin),
  'forward.close': (p, c) => offeredBy(c.api.forwardClose, 'port forwards').call(c.api, p.hostPort, c.origin),
  stop: async (_p, c) => {
    await c.api.stop(c.origin);
    return { stopping: true };
  },
};

/** An optional ControllerApi method, or a clear refusal when this controller does not have it. */
function offeredBy<F>(fn: F | undefined, what: string): F {
  if (!fn) throw new CoworkError('unsupported', `${what}: not available in this controller`);
  return fn;
}

export const SUBSCRIPTIONS: { [M in SubscriptionName]: SubscriptionBinding<M> } = {
  'timeline.subscribe': (_p, api, emit) =>
    api.timelineSubscribe((e) => emit(e as EventOf<'timeline.subscribe'>)),
  // Only what a terminal needs live: the model's text as it streams, and the files the task
  // wrote. The id is optional so a client can subscribe before it starts a task and lose none
  // of its first words.
  'tasks.events': (p, api, emit) =>
    api.taskEvents?.((taskId, event) => {
      if (p.id !== undefined && taskId !== p.id) return;
      const live = liveTaskEvent(taskId, event);
      if (live) emit(live);
    }) ?? (() => {}),
  // The session lasts as long as this request: when the MCP server goes (its socket closes), it ends.
  'tools.session': (p, api, emit) => {
    const opened = offeredBy(api.toolsOpen, 'tool sessions').call(api, p.client);
    emit({ type: 'opened', ...opened });
    return () => api.toolsClose?.(opened.session);
  },
};

function liveTaskEvent(taskId: string, event: TaskLiveEvent): EventOf<'tasks.events'> | undefined {
  if (event.type === 'text' && typeof event.text === 'string')
    return { taskId, type: 'text', text: event.text };
  if (event.type !== 'finished') return undefined;
  const result = (event.result ?? {}) as { outcome?: unknown; filesChanged?: unknown };
  const files = Array.isArray(result.filesChanged)
    ? result.filesChanged.filter((f) => typeof f === 'string')
    : [];
  return { taskId, type: 'finished', outcome: String(result.outcome ?? 'unknown'), filesChanged: files };
}

export function isCall(name: MethodName): name is CallName {
  return Object.hasOwn(CALLS, name);
}

export function isSubscription(name: MethodName): name is SubscriptionName {
  return Object.hasOwn(SUBSCRIPTIONS, name);
}

/** Who is calling, for the choice of schema: the sandbox's owner may send owner-only params. */
export type Caller = 'owner' | 'remote';

export type ParamCheck<M extends MethodName> =
  | { ok: true; params: ParsedParamsOf<M> }
  | { ok: false; error: CoworkError };

/**
 * Validates params against the contract's schema for this kind of caller (a missing params
 * object is `{}`). A transport with framing options of its own passes its extension of that
 * schema as `schema`.
 */
export function parseParams<M extends MethodName>(
  name: M,
  raw: unknown,
  caller: Caller,
  schema?: z.ZodObject,
): ParamCheck<M> {
  const spec: Methods[MethodName] = METHODS[name];
  const parsed = (schema ?? (caller === 'owner' ? spec.ownerParams : spec.params)).safeParse(raw ?? {});
  if (!parsed.success) {
    const error = new CoworkError(
      'invalidArgument',
      `invalid params for '${name}': ${z.prettifyError(parsed.error)}`,
    );
    return { ok: false, error };
  }
  return { ok: true, params: parsed.data as ParsedParamsOf<M> };
}

/** The method named, if this transport offers it (an own property of the table, never `__proto__`). */
export function offered(name: string, transport: Transport): MethodName | undefined {
  if (!isMethodName(name)) return undefined;
  return (METHODS[name].transports as readonly Transport[]).includes(transport) ? name : undefined;
}

/**
 * One call of a method the ControllerApi serves, for a transport that has already checked the
 * caller's role: the params are validated with the contract's schema, then bound.
 */
export async function invoke<M extends CallName>(
  name: M,
  raw: ParamsOf<M>,
  ctx: CallContext,
  caller: Caller = 'remote',
): Promise<ResultOf<M>> {
  const check = parseParams(name, raw, caller);
  if (!check.ok) throw check.error;
  const call = CALLS[name] as CallBinding<M>;
  return await call(check.params, ctx);
}
