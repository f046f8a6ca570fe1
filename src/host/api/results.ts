import { z } from 'zod';
import { LAYERS, POLICY_CONTEXTS, RISKS } from '../policy/types.js';
import { protectedChangeShape } from '../timeline/events.js';
import { ROLES } from './roles.js';

/**
 * The results of the contract's methods, as zod schemas. The bindings must return these types
 * (checked at compile time); they are not re-validated at run time, where the controller is the
 * only source of them.
 */

export const roleSchema = z.enum(ROLES);
const policyContext = z.enum(POLICY_CONTEXTS);

export const decisionSchema = z.strictObject({
  effect: z.enum(['allow', 'ask', 'deny']),
  reasons: z.array(z.string()),
  layer: z.enum(LAYERS),
  rule: z.string().optional(),
  withheld: z.array(z.string()).optional(),
});

export const execResultSchema = z.strictObject({
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  stdout: z.string(),
  stderr: z.string(),
  truncated: z.boolean(),
  durationMs: z.number().nonnegative(),
  timedOut: z.boolean(),
});

export const execOutcomeSchema = z.strictObject({
  decision: decisionSchema,
  result: execResultSchema.optional(),
  deniedReason: z.string().optional(),
  approvalId: z.string().optional(),
  protectedChanges: z.array(z.strictObject(protectedChangeShape)).optional(),
  /** The checkpoint taken before an agent-context command outside a task (`cowork-vm diff ID`). */
  checkpoint: z.string().optional(),
});

/** A background job (src/host/jobs/guest-jobs.ts). */
export const jobInfoSchema = z.strictObject({
  id: z.string(),
  command: z.string(),
  state: z.enum(['running', 'exited', 'killed', 'failed']),
  startedAt: z.string(),
  endedAt: z.string().optional(),
  exitCode: z.number().int().nullable().optional(),
  signal: z.string().nullable().optional(),
  reason: z.string().optional(),
  outputBytes: z.number().int(),
  droppedBytes: z.number().int(),
  taskId: z.string().optional(),
});

/** A guest port forwarded to the host's loopback (src/host/jobs/port-forwards.ts). */
export const forwardInfoSchema = z.strictObject({
  guestPort: z.number().int(),
  hostPort: z.number().int(),
  url: z.string(),
  openedAt: z.string(),
  connections: z.number().int(),
});

export const statusSchema = z.strictObject({
  workspace: z.string(),
  state: z.enum(['starting', 'running', 'stopping', 'stopped', 'crashed']),
  pid: z.number().int(),
  vm: z.strictObject({
    driver: z.string(),
    pid: z.number().int().optional(),
    accel: z.string(),
    share: z.string(),
    image: z.string(),
    imageHash: z.string().optional(),
    cpus: z.number().int(),
    memoryMiB: z.number().int(),
    sshPort: z.number().int().optional(),
    bootMs: z.number().optional(),
    /** Each boot step's end in seconds of guest uptime, in boot order (docs/guest-contract.md, COWORK-TIME). */
    bootSteps: z.record(z.string().regex(/^[a-z]{1,32}$/), z.number()).optional(),
    startedAt: z.string().optional(),
  }),
  egress: z.strictObject({ listening: z.boolean(), port: z.number().int().optional() }).optional(),
  control: z.strictObject({ listen: z.string().optional() }).optional(),
  /** The web dashboard's address (no login token in it); absent when `[dashboard] enabled = false`. */
  dashboard: z.strictObject({ url: z.string() }).optional(),
  pendingApprovals: z.number().int(),
  tasks: z.strictObject({ running: z.number().int() }),
  /** Background jobs running in the guest (`cowork-vm jobs` lists them). */
  jobs: z.strictObject({ running: z.number().int() }).optional(),
  /** Guest ports reachable on the host's 127.0.0.1 (`cowork-vm forward`). */
  forwards: z.array(forwardInfoSchema).optional(),
  cache: z
    .strictObject({ name: z.string(), sizeBytes: z.number().int(), kind: z.enum(['workspace', 'shared']) })
    .optional(),
});

/** `policy.check`: what the policy engine would decide, and why; nothing ran and nobody was asked. */
export const policyCheckSchema = z.strictObject({
  verdict: z.enum(['allow', 'ask', 'deny']),
  reasons: z.array(z.string()),
  layer: z.enum(LAYERS),
  rule: z.string().optional(),
  /** The context it was decided in: the caller's, or the stricter one asked for. */
  context: policyContext,
});

export const pendingApprovalSchema = z.strictObject({
  id: z.string(),
  taskId: z.string().optional(),
  tool: z.string(),
  command: z.string().optional(),
  input: z.unknown().optional(),
  cwd: z.string().optional(),
  risk: z.enum(RISKS),
  context: policyContext,
  reasons: z.array(z.string()),
  createdAt: z.number(),
  expiresAt: z.number(),
});

export const taskSummarySchema = z.strictObject({
  id: z.string(),
  title: z.string(),
  status: z.string(),
  context: policyContext,
  origin: z.string(),
  createdAt: z.string(),
  finishedAt: z.string().optional(),
  outcome: z.string().optional(),
  summary: z.string().optional(),
});

/** A timeline event as stored (see timeline/events.ts for each type's `data`). */
export const timelineEntrySchema = z.object({
  id: z.number().int(),
  ts: z.number(),
  taskId: z.string().nullable(),
  type: z.string(),
  data: z.record(z.string(), z.unknown()),
});

export const taskLimitsSchema = z.strictObject({
  maxTokens: z.number().int().positive().optional(),
  maxCostUsd: z.number().positive().optional(),
  maxIterations: z.number().int().positive().optional(),
});

export const deviceSchema = z.strictObject({
  id: z.string(),
  name: z.string(),
  role: roleSchema,
  /** 'control' for WebSocket devices; a channel name ('telegram') for messaging users. */
  channel: z.string(),
  channelUser: z.string().optional(),
  createdAt: z.number(),
  lastSeenAt: z.number().optional(),
  revokedAt: z.number().optional(),
  revokedBy: z.string().optional(),
});
