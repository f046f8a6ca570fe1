import { z } from 'zod';
import { menuModelSchema } from '../menu/model.js';
import { POLICY_CONTEXTS } from '../policy/types.js';
import { verdictKindSchema } from '../timeline/events.js';
import { PARAM_LIMITS as L } from './limits.js';
import {
  deviceSchema,
  execOutcomeSchema,
  forwardInfoSchema,
  jobInfoSchema,
  pendingApprovalSchema,
  policyCheckSchema,
  roleSchema,
  statusSchema,
  taskLimitsSchema,
  taskSummarySchema,
  timelineEntrySchema,
} from './results.js';
import type { Role } from './roles.js';

export { roleSchema } from './results.js';

/**
 * THE contract of every frontend: each method with its params, its result, the lowest role
 * that may call it, the policy context it runs in and a one-line description. The local Unix
 * socket (control/local-protocol.ts), the WebSocket API (control/methods.ts) and the messaging
 * channels are adapters derived from this table, and docs/control-api.md is checked against it
 * (tests/unit/api-contract.test.ts), so the transports cannot disagree about a limit again.
 *
 * Only types from this module may be imported by the CLI's client path: it loads zod.
 */

/** Where a method is offered. `local`: the owner's Unix socket; `remote`: the WebSocket API and channels. */
export const TRANSPORTS = ['local', 'remote'] as const;
export type Transport = (typeof TRANSPORTS)[number];

/**
 * The policy context a method's work is decided in.
 *   none   — no policy decision is taken (reads, answers, cancels, stop)
 *   caller — the caller's own: `local` for the owner (who may ask for a stricter one), `gateway`
 *            for a remote device or a channel user
 *   task   — the task's tool calls: `agent`, or `gateway` when a remote caller started it
 */
export const CONTEXT_RULES = ['none', 'caller', 'task'] as const;
export type ContextRule = (typeof CONTEXT_RULES)[number];

const policyContext = z.enum(POLICY_CONTEXTS);
const verdictKind = verdictKindSchema;
const empty = z.strictObject({});
const taskId = z.string().min(1).max(L.taskIdChars);
const byId = z.strictObject({ id: taskId });

/** A tool as an outside agent sees it: its input schema is derived from the tool's zod definition. */
const toolInfoSchema = z.strictObject({
  name: z.string(),
  description: z.string(),
  inputSchema: z.looseObject({ type: z.literal('object') }),
});
/** The MCP client's own name and version, as its `initialize` request gave them. */
const toolClientSchema = z.strictObject({
  name: z.string().min(1).max(L.clientNameChars),
  version: z.string().max(L.clientNameChars),
});
const toolSessionOpenedSchema = z.strictObject({
  type: z.literal('opened'),
  session: z.string(),
  /** The timeline task every call of the session is recorded in. */
  taskId: z.string(),
  origin: z.string(),
  maxCalls: z.number(),
  maxSessionMinutes: z.number(),
});
const toolCallResultSchema = z.strictObject({
  /** What the agent is told: the tool's output, or why it did not run and what the user can do. */
  text: z.string(),
  isError: z.boolean(),
  denied: z.boolean(),
});

// ---- the table --------------------------------------------------------------------------------

/** What every entry of the table declares. */
export interface MethodSpec<
  P extends z.ZodObject = z.ZodObject,
  O extends z.ZodObject = z.ZodObject,
  R extends z.ZodType = z.ZodType,
  E extends z.ZodType = z.ZodType,
  T extends readonly Transport[] = readonly Transport[],
> {
  description: string;
  minRole: Role;
  context: ContextRule;
  transports: T;
  /** What every caller may send. */
  params: P;
  /** What the owner (local socket) may send: `params` plus owner-only fields (a context, an API key). */
  ownerParams: O;
  /** The answer. For a subscription: the answer once it ends (the local socket holds the request open). */
  result: R;
  /** Events pushed to the caller while the call runs (exec output, subscription events). */
  emits?: E;
  /** A subscription: it lasts until the caller cancels it (local) or unsubscribes (remote). */
  subscription?: boolean;
}

function method<
  P extends z.ZodObject,
  R extends z.ZodType,
  X extends z.ZodRawShape = Record<never, never>,
  E extends z.ZodType = z.ZodNever,
  const T extends readonly Transport[] = readonly Transport[],
>(
  spec: Omit<MethodSpec<P, z.ZodObject, R, E, T>, 'ownerParams'> & { ownerOnly?: X },
): MethodSpec<P, z.ZodObject<P['shape'] & X, z.core.$strict>, R, E, T> {
  const { ownerOnly, ...rest } = spec;
  const ownerParams = (ownerOnly ? spec.params.extend(ownerOnly) : spec.params) as z.ZodObject<
    P['shape'] & X,
    z.core.$strict
  >;
  return { ...rest, ownerParams };
}

const BOTH = ['local', 'remote'] as const;

export const METHODS = {
  status: method({
    description: "The sandbox's state: VM, accelerator, share, egress, pending approvals, running tasks",
    minRole: 'viewer',
    context: 'none',
    transports: BOTH,
    params: empty,
    result: statusSchema,
  }),
  'tasks.list': method({
    description: 'The most recent agent tasks, newest first',
    minRole: 'viewer',
    context: 'none',
    transports: BOTH,
    params: z.strictObject({ limit: z.number().int().min(1).max(L.tasksListLimit).optional() }),
    result: z.array(taskSummarySchema),
  }),
  'tasks.get': method({
    description: 'One task by id',
    minRole: 'viewer',
    context: 'none',
    transports: BOTH,
    params: byId,
    result: taskSummarySchema,
  }),
  'tasks.diff': method({
    description:
      'The patch of what a task (or agent command, or undo) changed in the workspace, from its checkpoint',
    minRole: 'viewer',
    context: 'none',
    transports: BOTH,
    params: z.strictObject({ checkpoint: taskId }),
    result: z.strictObject({
      checkpoint: z.string(),
      /** `diff --git` text; binary files are named, not shown. Cut at a line end past the cap. */
      patch: z.string(),
      truncated: z.boolean(),
      /** The work never recorded its end (still running, or the controller stopped first): compared with now. */
      live: z.boolean(),
    }),
  }),
  'tasks.start': method({
    description: 'Start an agent task; answers with its id once it runs',
    minRole: 'operator',
    context: 'task',
    transports: BOTH,
    params: z.strictObject({
      prompt: z.string().min(1).max(L.promptChars),
      model: z.string().min(1).max(L.modelChars).optional(),
      /** Budgets for this task; they only tighten the configured ones. */
      limits: taskLimitsSchema.optional(),
    }),
    ownerOnly: {
      context: policyContext.default('agent'),
      apiKeyOverride: z.string().min(1).max(1000).optional(),
    },
    result: z.strictObject({ id: z.string() }),
  }),
  'tasks.cancel': method({
    description: 'Cancel a running task (aborts its model call and guest command)',
    minRole: 'operator',
    context: 'none',
    transports: BOTH,
    params: byId,
    result: z.strictObject({ cancelled: z.string() }),
  }),
  'tasks.events': method({
    description:
      "Live text of running tasks as the model writes it, and each task's result (all tasks, or one by id)",
    minRole: 'viewer',
    context: 'none',
    transports: ['local'],
    params: z.strictObject({ id: taskId.optional() }),
    result: z.null(),
    emits: z.discriminatedUnion('type', [
      z.strictObject({ taskId: z.string(), type: z.literal('text'), text: z.string() }),
      /** The agent's own result, just before the timeline's task.finished. */
      z.strictObject({
        taskId: z.string(),
        type: z.literal('finished'),
        outcome: z.string(),
        /** Workspace-relative paths the task changed: its checkpoint change set (shell included); without checkpoints, what the file tools wrote. */
        filesChanged: z.array(z.string()),
      }),
    ]),
    subscription: true,
  }),
  'timeline.query': method({
    description: 'Stored timeline events, oldest first, after an id and/or of one task',
    minRole: 'viewer',
    context: 'none',
    transports: BOTH,
    params: z.strictObject({
      taskId: taskId.optional(),
      afterId: z.number().int().min(0).optional(),
      limit: z.number().int().min(1).max(L.timelineQueryLimit).optional(),
    }),
    result: z.array(timelineEntrySchema),
  }),
  'timeline.subscribe': method({
    description: 'Live timeline events as they are recorded',
    minRole: 'viewer',
    context: 'none',
    transports: BOTH,
    params: empty,
    result: z.null(),
    emits: timelineEntrySchema,
    subscription: true,
  }),
  'timeline.unsubscribe': method({
    description: "End this connection's timeline subscription",
    minRole: 'viewer',
    context: 'none',
    transports: ['remote'],
    params: empty,
    result: z.strictObject({ unsubscribed: z.boolean() }),
  }),
  'approvals.list': method({
    description: 'Commands and tool calls waiting for an answer',
    minRole: 'viewer',
    context: 'none',
    transports: BOTH,
    params: empty,
    result: z.array(pendingApprovalSchema),
  }),
  'approvals.answer': method({
    description: 'Answer a pending approval; a deny message is passed to the agent',
    minRole: 'operator',
    context: 'none',
    transports: BOTH,
    params: z.strictObject({
      id: z.string().min(1).max(L.approvalIdChars),
      kind: verdictKind,
      message: z.string().max(L.approvalMessageChars).optional(),
    }),
    result: z.strictObject({ answered: z.string(), kind: verdictKind }),
  }),
  exec: method({
    description: 'Run a shell command in the guest, through one policy decision (and an approval if asked)',
    minRole: 'admin',
    context: 'caller',
    transports: BOTH,
    params: z.strictObject({
      command: z.string().min(1).max(L.commandChars),
      cwd: z.string().min(1).max(L.cwdChars).optional(),
      timeoutMs: z.number().int().min(1).max(L.maxTimeoutMs).optional(),
      maxOutputBytes: z.number().int().min(1).max(L.maxOutputBytes).optional(),
      stdin: z.string().max(L.stdinChars).optional(),
      taskId: taskId.optional(),
    }),
    ownerOnly: { context: policyContext.default('local') },
    result: execOutcomeSchema,
    emits: z.strictObject({ stream: z.enum(['stdout', 'stderr']), data: z.string() }),
  }),
  'jobs.start': method({
    description:
      'Start a background job in the guest (a dev server, a watcher) through one policy decision; answers with its id',
    minRole: 'admin',
    context: 'caller',
    transports: ['local'],
    params: z.strictObject({
      command: z.string().min(1).max(L.commandChars),
      cwd: z.string().min(1).max(L.cwdChars).optional(),
      timeoutMs: z.number().int().min(1).max(L.maxTimeoutMs).optional(),
      taskId: taskId.optional(),
    }),
    ownerOnly: { context: policyContext.default('local') },
    result: z.strictObject({
      decision: execOutcomeSchema.shape.decision,
      job: jobInfoSchema.optional(),
      deniedReason: z.string().optional(),
    }),
  }),
  'jobs.list': method({
    description: 'Background jobs: running ones and the most recent that ended',
    minRole: 'viewer',
    context: 'none',
    transports: ['local'],
    params: empty,
    result: z.array(jobInfoSchema),
  }),
  'jobs.logs': method({
    description: "A background job's output the host holds; with follow, new output until the job ends",
    minRole: 'viewer',
    context: 'none',
    transports: ['local'],
    params: z.strictObject({ id: taskId, follow: z.boolean().optional() }),
    result: jobInfoSchema,
    emits: z.strictObject({ stream: z.enum(['stdout', 'stderr']), data: z.string() }),
  }),
  'jobs.kill': method({
    description: "Kill a background job's processes in the guest",
    minRole: 'admin',
    context: 'none',
    transports: ['local'],
    params: byId,
    result: jobInfoSchema,
  }),
  'forward.open': method({
    description:
      "Make a guest port reachable on the host's 127.0.0.1 over the SSH session (the local context only)",
    minRole: 'admin',
    context: 'caller',
    transports: ['local'],
    params: z.strictObject({
      guestPort: z.number().int().min(1).max(65535),
      /** 0: a free port. Default: the guest port. */
      hostPort: z.number().int().min(0).max(65535).optional(),
    }),
    result: forwardInfoSchema,
  }),
  'forward.close': method({
    description: 'Close a forward by its host port',
    minRole: 'admin',
    context: 'none',
    transports: ['local'],
    params: z.strictObject({ hostPort: z.number().int().min(1).max(65535) }),
    result: forwardInfoSchema,
  }),
  'devices.list': method({
    description: 'Paired devices and messaging accounts',
    minRole: 'admin',
    context: 'none',
    transports: ['remote'],
    params: empty,
    result: z.array(deviceSchema),
  }),
  'devices.revoke': method({
    description: 'Revoke a device: its key stops working and its sessions are closed',
    minRole: 'admin',
    context: 'none',
    transports: ['remote'],
    params: z.strictObject({ id: taskId }),
    result: z.strictObject({ revoked: z.string() }),
  }),
  'pair.create': method({
    description: 'A one-time pairing code for a new device or channel account',
    minRole: 'admin',
    context: 'none',
    transports: ['remote'],
    params: z.strictObject({ role: roleSchema }),
    result: z.strictObject({ code: z.string(), expiresAt: z.number() }),
  }),
  'menu.get': method({
    description: "The menu model for the caller's role (what the menubar and the tray render)",
    minRole: 'viewer',
    context: 'none',
    transports: BOTH,
    /** `dashboard`: the caller can open the dashboard, so the model offers it. */
    params: z.strictObject({ dashboard: z.boolean().optional() }),
    result: menuModelSchema,
  }),
  'policy.check': method({
    description:
      'Would this command be allowed, and why? The policy decision, without running anything or asking anyone',
    minRole: 'viewer',
    context: 'caller',
    transports: BOTH,
    params: z.strictObject({
      command: z.string().min(1).max(L.commandChars),
      cwd: z.string().min(1).max(L.cwdChars).optional(),
      /** Decide as a stricter context than the caller's (never a looser one). */
      context: policyContext.optional(),
    }),
    result: policyCheckSchema,
  }),
  'dashboard.login': method({
    description:
      "A one-time login URL for the web dashboard, bound to the caller's device and role (the owner: admin)",
    minRole: 'viewer',
    context: 'none',
    transports: BOTH,
    params: empty,
    /** The owner may log in with a lower role: a revocable device "dashboard (<role>)". */
    ownerOnly: { role: roleSchema.optional() },
    result: z.strictObject({ url: z.string(), expiresAt: z.number() }),
  }),
  'tools.list': method({
    description:
      "The sandbox's tools as an outside agent sees them (MCP): name, description, JSON schema of the input",
    minRole: 'viewer',
    context: 'none',
    transports: ['local'],
    params: empty,
    result: z.array(toolInfoSchema),
  }),
  'tools.session': method({
    description:
      'Open a tool session for an outside agent (MCP client): one timeline task, its budgets; it ends when the request does',
    minRole: 'operator',
    context: 'task',
    transports: ['local'],
    params: z.strictObject({ client: toolClientSchema }),
    result: z.null(),
    emits: toolSessionOpenedSchema,
    subscription: true,
  }),
  'tools.call': method({
    description:
      "Run one tool of a tool session through the enforcement path (policy, approval, guest, timeline) as the session's agent",
    minRole: 'operator',
    context: 'task',
    transports: ['local'],
    params: z.strictObject({
      session: z.string().min(1).max(L.taskIdChars),
      tool: z.string().min(1).max(L.toolNameChars),
      input: z.unknown(),
    }),
    result: toolCallResultSchema,
    /** While the call waits for an answer: which approval, so the client can say who to ask. */
    emits: z.strictObject({ type: z.literal('approval'), id: z.string(), reasons: z.array(z.string()) }),
  }),
  stop: method({
    description: 'Stop the sandbox (the guest is powered off; workspace files stay)',
    minRole: 'admin',
    context: 'none',
    transports: BOTH,
    params: empty,
    result: z.strictObject({ stopping: z.literal(true) }),
  }),
} satisfies Record<string, MethodSpec>;

export type Methods = typeof METHODS;
export type MethodName = keyof Methods;
export const METHOD_NAMES = Object.keys(METHODS) as MethodName[];

/** Methods a transport offers, in table order. */
export type MethodOf<T extends Transport> = {
  [M in MethodName]: T extends Methods[M]['transports'][number] ? M : never;
}[MethodName];
export type LocalMethodName = MethodOf<'local'>;
export type RemoteMethodName = MethodOf<'remote'>;

export function methodsOf<T extends Transport>(transport: T): MethodOf<T>[] {
  return METHOD_NAMES.filter((m) =>
    (METHODS[m].transports as readonly Transport[]).includes(transport),
  ) as MethodOf<T>[];
}

export function isMethodName(name: string): name is MethodName {
  return Object.hasOwn(METHODS, name);
}

/** What a remote caller sends. */
export type ParamsOf<M extends MethodName> = z.input<Methods[M]['params']>;
/** What the owner sends on the local socket (params plus owner-only fields). */
export type OwnerParamsOf<M extends MethodName> = z.input<Methods[M]['ownerParams']>;
/** Params after validation, as the bindings receive them: owner-only fields are absent for remote callers. */
export type ParsedParamsOf<M extends MethodName> = z.output<Methods[M]['params']> &
  Partial<z.output<Methods[M]['ownerParams']>>;
export type ResultOf<M extends MethodName> = z.output<Methods[M]['result']>;
/** What a call pushes while it runs; `never` for methods that push nothing. */
export type EventOf<M extends MethodName> = z.output<NonNullable<Methods[M]['emits']>>;
