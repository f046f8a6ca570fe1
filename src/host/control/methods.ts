import { z } from 'zod';
import { CALLS, type CallContext, offered, parseParams } from '../api/bindings.js';
import { METHODS as CONTRACT, type MethodSpec, methodsOf, type RemoteMethodName } from '../api/contract.js';
import type { ControllerApi, Origin } from '../api/controller.js';
import { type Role, roleAllows } from '../api/roles.js';
import { CoworkError } from '../errors.js';
import type { ControlStore } from './store.js';

export { ROLE_RANK, roleAllows } from '../api/roles.js';

/**
 * The WebSocket API's adapter of the contract (src/host/api/contract.ts): its methods are the
 * contract's `remote` ones, with the contract's roles and params. A method runs only if the
 * caller is authenticated and its role ranks at least `minRole`; messaging channels use the
 * same table, so the rules cannot drift between transports.
 */

/** What a method handler may use besides the ControllerApi: the caller and the device registry. */
/** The device registry of a method context, over the control API's store. */
export function storeDevices(store: ControlStore): MethodContext['devices'] {
  return {
    list: () => store.listDevices(),
    revoke: (id, by) => store.revokeDevice(id, by),
    createPairingCode: (o) => store.createPairingCode(o),
  };
}

export interface MethodContext {
  api: ControllerApi;
  origin: Origin;
  deviceId: string;
  devices: {
    list(): unknown[];
    revoke(id: string, by: string): void;
    createPairingCode(opts: { role: Role }): { code: string; expiresAt: number };
  };
  /** Starts/stops pushing timeline events to this connection. */
  subscribeTimeline(): boolean;
  unsubscribeTimeline(): boolean;
  signal: AbortSignal;
  /** Pushes an `event` frame to this connection only. */
  emit(event: string, data: unknown): void;
  /** The id of the request being served (so pushed events can be matched to it). */
  requestId: string;
}

/**
 * Framing options of this transport, beyond the contract's params: `exec` output is pushed as
 * `exec.output` events ({ requestId, stream, data }) only when the caller asks with `stream`.
 */
const FRAMING: Partial<Record<RemoteMethodName, z.ZodRawShape>> = {
  exec: { stream: z.boolean().optional() },
};

/** Methods that act on this connection or the device store rather than the ControllerApi. */
const SESSION: Partial<
  Record<RemoteMethodName, (params: Record<string, unknown>, c: MethodContext) => unknown>
> = {
  'timeline.subscribe': (_p, c) => ({ subscribed: c.subscribeTimeline() }),
  'timeline.unsubscribe': (_p, c) => ({ unsubscribed: c.unsubscribeTimeline() }),
  'devices.list': (_p, c) => c.devices.list(),
  'devices.revoke': (p, c) => {
    c.devices.revoke(p.id as string, c.origin.id);
    return { revoked: p.id };
  },
  'pair.create': (p, c) => c.devices.createPairingCode({ role: p.role as Role }),
};

function run(name: RemoteMethodName, params: Record<string, unknown>, role: Role, c: MethodContext): unknown {
  const session = SESSION[name];
  if (session) return session(params, c);
  const { stream, ...rest } = params;
  const ctx: CallContext = { api: c.api, origin: c.origin, role, signal: c.signal };
  if (stream === true) {
    ctx.onOutput = (s, chunk) =>
      c.emit('exec.output', { requestId: c.requestId, stream: s, data: chunk.toString('utf8') });
  }
  const call = CALLS[name as keyof typeof CALLS] as (p: unknown, ctx: CallContext) => unknown;
  return call(rest, ctx);
}

export const METHOD_NAMES: RemoteMethodName[] = methodsOf('remote');

/** The role table of this transport (and of the channels), derived from the contract. */
export const METHODS = Object.fromEntries(
  METHOD_NAMES.map((m) => {
    const spec: MethodSpec = CONTRACT[m];
    return [m, { minRole: spec.minRole, params: spec.params.extend(FRAMING[m] ?? {}) }];
  }),
) as Record<RemoteMethodName, { minRole: Role; params: z.ZodObject }>;

export type MethodName = RemoteMethodName;

export function isMethodName(name: string): name is MethodName {
  return offered(name, 'remote') !== undefined;
}

export type PreparedCall =
  | { ok: true; run: (ctx: MethodContext) => Promise<unknown> }
  /** `protocol`: the frame itself was wrong (unknown method, bad params) and counts as abuse. */
  | { ok: false; error: CoworkError; protocol: boolean };

/** Checks method name, role and params, in that order; nothing runs unless all three pass. */
export function prepareCall(name: string, rawParams: unknown, role: Role): PreparedCall {
  const method = offered(name, 'remote') as RemoteMethodName | undefined;
  if (!method) {
    const error = new CoworkError(
      'notFound',
      `unknown method '${name}'; known methods: ${METHOD_NAMES.join(', ')}`,
    );
    return { ok: false, error, protocol: true };
  }
  const { minRole } = CONTRACT[method];
  if (!roleAllows(role, minRole)) {
    const error = new CoworkError(
      'denied',
      `method '${name}' needs role '${minRole}' or higher; this device is '${role}'. Ask the owner to pair a device with a higher role.`,
    );
    return { ok: false, error, protocol: false };
  }
  const check = parseParams(method, rawParams, 'remote', METHODS[method].params);
  if (!check.ok) return { ok: false, error: check.error, protocol: true };
  const params = check.params as Record<string, unknown>;
  return { ok: true, run: async (ctx) => await run(method, params, role, ctx) };
}
