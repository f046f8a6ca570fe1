import { z } from 'zod';
import { CoworkError } from '../errors.js';
import type { ControllerApi, Origin } from './api.js';
import { type Role, roleSchema } from './protocol.js';

/**
 * THE role table and the method table of the control API, in one place. A method runs only if
 * the caller is authenticated and its role ranks at least `minRole`; messaging channels use the
 * same table (see channels/), so the rules cannot drift between transports.
 *
 *   viewer   — read: status, task lists, timeline, pending approvals
 *   operator — viewer + start/cancel tasks, answer approvals
 *   admin    — everything: exec in the guest, devices, pairing codes, stopping the controller
 */
export const ROLE_RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export function roleAllows(role: Role, minRole: Role): boolean {
  return ROLE_RANK[role] >= ROLE_RANK[minRole];
}

/** What a method handler may use besides the ControllerApi: the caller and the device registry. */
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

interface MethodSpec<S extends z.ZodType> {
  minRole: Role;
  params: S;
  run(params: z.infer<S>, ctx: MethodContext): unknown;
}

function method<S extends z.ZodType>(spec: MethodSpec<S>): MethodSpec<z.ZodType> {
  return spec as unknown as MethodSpec<z.ZodType>;
}

const empty = z.strictObject({});
const id = z.strictObject({ id: z.string().min(1).max(128) });

export const METHODS = {
  status: method({ minRole: 'viewer', params: empty, run: (_p, c) => c.api.status() }),
  'tasks.list': method({
    minRole: 'viewer',
    params: z.strictObject({ limit: z.number().int().min(1).max(1000).optional() }),
    run: (p, c) => c.api.tasksList(p),
  }),
  'tasks.get': method({ minRole: 'viewer', params: id, run: (p, c) => c.api.tasksGet(p.id) }),
  'tasks.start': method({
    minRole: 'operator',
    params: z.strictObject({
      prompt: z.string().min(1).max(100_000),
      model: z.string().min(1).max(100).optional(),
    }),
    run: (p, c) => c.api.tasksStart(p, c.origin),
  }),
  'tasks.cancel': method({
    minRole: 'operator',
    params: id,
    run: (p, c) => {
      c.api.tasksCancel(p.id, c.origin);
      return { cancelled: p.id };
    },
  }),
  'timeline.query': method({
    minRole: 'viewer',
    params: z.strictObject({
      taskId: z.string().min(1).max(128).optional(),
      afterId: z.number().int().min(0).optional(),
      limit: z.number().int().min(1).max(1000).optional(),
    }),
    run: (p, c) => c.api.timelineQuery(p),
  }),
  'timeline.subscribe': method({
    minRole: 'viewer',
    params: empty,
    run: (_p, c) => ({ subscribed: c.subscribeTimeline() }),
  }),
  'timeline.unsubscribe': method({
    minRole: 'viewer',
    params: empty,
    run: (_p, c) => ({ unsubscribed: c.unsubscribeTimeline() }),
  }),
  'approvals.list': method({ minRole: 'viewer', params: empty, run: (_p, c) => c.api.approvalsList() }),
  'approvals.answer': method({
    minRole: 'operator',
    params: z.strictObject({
      id: z.string().min(1).max(64),
      kind: z.enum(['approve-once', 'approve-task', 'deny']),
      message: z.string().max(2000).optional(),
    }),
    run: (p, c) => {
      c.api.approvalsAnswer(p.id, { kind: p.kind, message: p.message }, c.origin);
      return { answered: p.id, kind: p.kind };
    },
  }),
  exec: method({
    minRole: 'admin',
    params: z.strictObject({
      command: z.string().min(1).max(100_000),
      cwd: z.string().min(1).max(4096).optional(),
      timeoutMs: z.number().int().min(1).max(86_400_000).optional(),
      maxOutputBytes: z
        .number()
        .int()
        .min(1)
        .max(64 * 1024 * 1024)
        .optional(),
      stdin: z
        .string()
        .max(1024 * 1024)
        .optional(),
      taskId: z.string().min(1).max(128).optional(),
      /** Push output as `exec.output` events ({ requestId, stream, data }) while the command runs. */
      stream: z.boolean().optional(),
    }),
    // Always the gateway context: c.origin is built by the server, never taken from the client.
    run: (p, c) => {
      const { stream, ...req } = p;
      const push = (name: 'stdout' | 'stderr') => (chunk: Buffer) =>
        c.emit('exec.output', { requestId: c.requestId, stream: name, data: chunk.toString('utf8') });
      const opts = stream
        ? { signal: c.signal, onStdout: push('stdout'), onStderr: push('stderr') }
        : { signal: c.signal };
      return c.api.exec(req, c.origin, opts);
    },
  }),
  'devices.list': method({ minRole: 'admin', params: empty, run: (_p, c) => c.devices.list() }),
  'devices.revoke': method({
    minRole: 'admin',
    params: id,
    run: (p, c) => {
      c.devices.revoke(p.id, c.origin.id);
      return { revoked: p.id };
    },
  }),
  'pair.create': method({
    minRole: 'admin',
    params: z.strictObject({ role: roleSchema }),
    run: (p, c) => c.devices.createPairingCode({ role: p.role }),
  }),
  stop: method({
    minRole: 'admin',
    params: empty,
    run: async (_p, c) => {
      await c.api.stop(c.origin);
      return { stopping: true };
    },
  }),
} satisfies Record<string, MethodSpec<z.ZodType>>;

export type MethodName = keyof typeof METHODS;
export const METHOD_NAMES = Object.keys(METHODS) as MethodName[];

export function isMethodName(name: string): name is MethodName {
  return Object.hasOwn(METHODS, name);
}

export type PreparedCall =
  | { ok: true; run: (ctx: MethodContext) => Promise<unknown> }
  /** `protocol`: the frame itself was wrong (unknown method, bad params) and counts as abuse. */
  | { ok: false; error: CoworkError; protocol: boolean };

/** Checks method name, role and params, in that order; nothing runs unless all three pass. */
export function prepareCall(name: string, rawParams: unknown, role: Role): PreparedCall {
  if (!isMethodName(name)) {
    const error = new CoworkError(
      'notFound',
      `unknown method '${name}'; known methods: ${METHOD_NAMES.join(', ')}`,
    );
    return { ok: false, error, protocol: true };
  }
  const spec = METHODS[name];
  if (!roleAllows(role, spec.minRole)) {
    const error = new CoworkError(
      'denied',
      `method '${name}' needs role '${spec.minRole}' or higher; this device is '${role}'. Ask the owner to pair a device with a higher role.`,
    );
    return { ok: false, error, protocol: false };
  }
  const parsed = spec.params.safeParse(rawParams ?? {});
  if (!parsed.success) {
    const error = new CoworkError(
      'invalidArgument',
      `invalid params for '${name}': ${z.prettifyError(parsed.error)}`,
    );
    return { ok: false, error, protocol: true };
  }
  return { ok: true, run: async (ctx) => await spec.run(parsed.data, ctx) };
}
