import { z } from 'zod';
import { LAYERS, POLICY_CONTEXTS, RISKS } from '../policy/types.js';

/**
 * Every event the timeline stores, as one zod discriminated union on `type`. Events are strict
 * objects: a misspelt or extra field is rejected at `record` time rather than silently dropped,
 * which is also what keeps secret values out (secret.* events accept names only).
 *
 * Convention: bulky text (command output, tool input/output) goes in fields ending in `Excerpt`
 * (kept from the start) or `Tail` (kept from the end); the Timeline cuts each to its configured
 * cap and records the cap (`excerptCapBytes`) and whether anything was cut (`excerptTruncated`).
 */

const count = z.number().int().nonnegative();
const ms = z.number().nonnegative();
/** A protected path that appeared in the guest and what the host did with it (also in exec's answer). */
export const protectedChangeShape = {
  path: z.string(),
  change: z.enum(['created', 'replaced']),
  action: z.enum(['quarantined', 'quarantine-failed']),
  quarantinedTo: z.string().optional(),
  reason: z.string(),
  error: z.string().optional(),
};

/** A file a checkpoint could not store (too large, not a regular file) — reported, never silently lost. */
const skippedFileSchema = z.strictObject({ path: z.string(), size: count, reason: z.string() });
/** How many change lines a workspace.changes event carries (the full set: `cowork-vm diff`). */
export const CHANGE_LINES_CAP = 500;

const excerptMeta = {
  excerptCapBytes: count.optional(),
  excerptTruncated: z.boolean().optional(),
};

export const TASK_OUTCOMES = ['completed', 'failed', 'cancelled', 'limit', 'denied'] as const;
export const taskOutcomeSchema = z.enum(TASK_OUTCOMES);
export type TaskOutcome = z.infer<typeof taskOutcomeSchema>;

export const LIMIT_NAMES = [
  'maxTokensPerTask',
  'maxCostPerTask',
  'maxIterationsPerTask',
  'maxFileSizeMB',
] as const;
export const limitNameSchema = z.enum(LIMIT_NAMES);
export type LimitName = z.infer<typeof limitNameSchema>;

export const usageSchema = z.strictObject({
  input: count,
  output: count,
  cacheWrite: count.optional(),
  cacheRead: count.optional(),
});

export const budgetFiguresSchema = z.strictObject({
  model: z.string().optional(),
  tokensIn: count,
  tokensOut: count,
  cacheWrite: count,
  cacheRead: count,
  totalTokens: count,
  /** null when no price is known for the model (allowed only without a cost budget). */
  costUsd: z.number().nonnegative().nullable(),
  iterations: count,
  limits: z.strictObject({
    maxTokens: count.optional(),
    maxCostUsd: z.number().nonnegative().optional(),
    maxIterations: count.optional(),
  }),
});

/** How an approval was answered; the control API's `approvals.answer` takes the same kinds. */
export const verdictKindSchema = z.enum(['approve-once', 'approve-task', 'deny']);
const verdictKind = verdictKindSchema;

function ev<T extends string, S extends z.core.$ZodLooseShape>(type: T, shape: S) {
  return z.strictObject({ type: z.literal(type), ...shape });
}

/**
 * What the control API and the messaging channels record about access: every failure, lockout,
 * refusal and pairing. control/events.ts builds its `securityEventSchema` from this list, so the
 * Timeline (passed there as the SecurityRecorder) accepts exactly what they emit.
 */
export const SECURITY_EVENTS = [
  ev('control.auth_ok', { ip: z.string(), deviceId: z.string() }),
  ev('control.auth_failed', { ip: z.string(), deviceId: z.string().optional(), reason: z.string() }),
  ev('control.pair_failed', { identity: z.string(), reason: z.string() }),
  ev('control.paired', {
    identity: z.string(),
    deviceId: z.string(),
    name: z.string(),
    role: z.string(),
    channel: z.string(),
  }),
  ev('control.lockout', { scope: z.enum(['auth', 'pair']), key: z.string(), until: z.number() }),
  ev('control.refused_locked', { scope: z.enum(['auth', 'pair']), key: z.string() }),
  ev('control.device_revoked', { deviceId: z.string(), by: z.string() }),
  ev('control.protocol_error', { ip: z.string(), deviceId: z.string().optional(), reason: z.string() }),
  ev('control.origin_refused', { ip: z.string(), origin: z.string() }),
  ev('channel.refused', { channel: z.string(), user: z.string(), reason: z.string() }),
  ev('channel.open_mode', { channel: z.string() }),
] as const;

export const timelineEventSchema = z.discriminatedUnion('type', [
  // tasks
  ev('task.started', { title: z.string(), context: z.enum(POLICY_CONTEXTS), origin: z.string() }),
  ev('task.finished', { outcome: taskOutcomeSchema, summary: z.string().optional() }),
  ev('task.cancelled', { by: z.string(), reason: z.string().optional() }),
  ev('task.limit', {
    name: limitNameSchema,
    figure: z.number(),
    limit: z.number(),
    message: z.string().optional(),
  }),
  // the enforcement path: request -> decision -> approval -> execution
  ev('command.requested', {
    tool: z.string(),
    command: z.string().optional(),
    inputExcerpt: z.string().optional(),
    cwd: z.string().optional(),
    context: z.enum(POLICY_CONTEXTS),
    /** Who sent it: 'cli', 'terminal', 'device:<id>', 'telegram:<user>', 'agent'. */
    origin: z.string().optional(),
    ...excerptMeta,
  }),
  ev('policy.decision', {
    effect: z.enum(['allow', 'ask', 'deny']),
    reasons: z.array(z.string()),
    layer: z.enum(LAYERS),
    rule: z.string().optional(),
    tool: z.string().optional(),
    command: z.string().optional(),
    context: z.enum(POLICY_CONTEXTS).optional(),
    origin: z.string().optional(),
  }),
  ev('approval.asked', {
    id: z.string(),
    tool: z.string(),
    command: z.string().optional(),
    inputExcerpt: z.string().optional(),
    cwd: z.string().optional(),
    risk: z.enum(RISKS),
    context: z.enum(POLICY_CONTEXTS),
    reasons: z.array(z.string()),
    expiresAt: ms,
    ...excerptMeta,
  }),
  ev('approval.answered', {
    id: z.string(),
    verdict: verdictKind,
    by: z.string(),
    message: z.string().optional(),
  }),
  ev('approval.timedout', { id: z.string(), verdict: z.literal('deny'), by: z.literal('timeout') }),
  ev('exec.started', {
    command: z.string(),
    cwd: z.string().optional(),
    tool: z.string().optional(),
    /** A background job (`exec --background`): its exec.finished/exec.failed carry the same id. */
    jobId: z.string().optional(),
  }),
  ev('exec.finished', {
    exitCode: z.number().int().nullable(),
    signal: z.string().nullable(),
    durationMs: ms,
    stdoutBytes: count,
    stderrBytes: count,
    /** The session cut the output at its maxOutputBytes (independent of the excerpt cap). */
    truncated: z.boolean(),
    timedOut: z.boolean().optional(),
    stdoutExcerpt: z.string().optional(),
    stderrExcerpt: z.string().optional(),
    jobId: z.string().optional(),
    ...excerptMeta,
  }),
  /** The command could not be run at all (session lost, VM gone): no exit code exists. */
  ev('exec.failed', { command: z.string(), error: z.string(), jobId: z.string().optional() }),
  // budgets and the model
  ev('budget', budgetFiguresSchema.shape),
  ev('model.call', {
    model: z.string(),
    usage: usageSchema,
    stopReason: z.string().nullable(),
    durationMs: ms,
    attempt: z.number().int().positive(),
    costUsd: z.number().nonnegative().nullable().optional(),
  }),
  ev('tool.call', {
    toolUseId: z.string(),
    name: z.string(),
    inputExcerpt: z.string().optional(),
    ...excerptMeta,
  }),
  ev('tool.result', {
    toolUseId: z.string(),
    name: z.string(),
    isError: z.boolean(),
    outputBytes: count.optional(),
    outputExcerpt: z.string().optional(),
    ...excerptMeta,
  }),
  // the VM
  ev('vm.started', {
    driver: z.string().optional(),
    accel: z.string(),
    share: z.string(),
    bootMs: ms,
    image: z.string().optional(),
    cpus: count.optional(),
    memoryMiB: count.optional(),
  }),
  ev('vm.stopped', { reason: z.string().optional(), graceful: z.boolean().optional() }),
  ev('vm.crashed', {
    reason: z.string(),
    exitCode: z.number().int().nullable().optional(),
    /** The end of the guest console log (capped from the end, like excerpts from the start). */
    consoleTail: z.string().optional(),
    ...excerptMeta,
  }),
  // the workspace boundary: a protected path (git metadata, .envrc…) appeared in the guest
  ev('workspace.protected_change', protectedChangeShape),
  // checkpoints: the workspace before each agent task / agent exec / undo, and what it changed
  ev('checkpoint.created', {
    checkpoint: z.string(),
    kind: z.enum(['task', 'exec', 'undo']),
    label: z.string(),
    tree: z.string(),
    files: count,
    skipped: z.array(skippedFileSchema),
  }),
  ev('workspace.changes', {
    checkpoint: z.string(),
    counts: z.strictObject({ created: count, deleted: count, modified: count, mode: count, type: count }),
    /** One line per change (`M  src/a.ts`, `m  run.sh (644 → 755)`), at most CHANGE_LINES_CAP. */
    changes: z.array(z.string()),
    changesTruncated: z.boolean().optional(),
    skipped: z.array(skippedFileSchema),
  }),
  ev('checkpoint.undone', {
    checkpoint: z.string(),
    of: z.string(),
    restored: count,
    removed: count,
    conflicts: z.array(z.string()),
    forced: z.boolean(),
  }),
  // network and browser
  ev('egress.request', {
    method: z.string(),
    host: z.string(),
    port: z.number().int().min(0).max(65535),
    decision: z.enum(['allow', 'ask', 'deny']),
    reason: z.string().optional(),
    /** Proxy details (egress/events.ts): which stage decided, the rule, the dialled address. */
    kind: z.enum(['http', 'connect']).optional(),
    url: z.string().optional(),
    stage: z.string().optional(),
    rule: z.string().optional(),
    /** Credential rules: the keychain entry's name the proxy added (never its value). */
    credential: z.string().optional(),
    approvedBy: z.string().optional(),
    address: z.string().optional(),
    error: z.string().optional(),
    status: z.number().int().optional(),
    bytesIn: count,
    bytesOut: count,
    durationMs: ms,
  }),
  ev('browser.action', {
    action: z.string(),
    url: z.string().optional(),
    outcome: z.string(),
    detail: z.string().optional(),
  }),
  // background jobs and port forwards (src/host/jobs/)
  ev('job.killed', { jobId: z.string(), by: z.string() }),
  ev('forward.opened', { guestPort: z.number().int(), hostPort: z.number().int(), origin: z.string() }),
  ev('forward.closed', { guestPort: z.number().int(), hostPort: z.number().int(), by: z.string() }),
  ev('forward.refused', {
    guestPort: z.number().int(),
    origin: z.string(),
    context: z.enum(POLICY_CONTEXTS),
    reason: z.string(),
  }),
  // control API and channels: their security events (control/events.ts records them)
  ...SECURITY_EVENTS,
  // secrets: names only, never values (strict objects reject any other field)
  ev('secret.set', { name: z.string() }),
  ev('secret.deleted', { name: z.string() }),
  ev('secret.used', { name: z.string(), purpose: z.string().optional() }),
  ev('secret.missing', { name: z.string(), purpose: z.string().optional() }),
  // anything that failed and is worth seeing later
  ev('error', { code: z.string(), message: z.string(), where: z.string().optional() }),
]);

/** What callers pass to `Timeline.record`. */
export type TimelineEvent = z.input<typeof timelineEventSchema>;
export type EventType = TimelineEvent['type'];
export type EventOf<T extends EventType> = Extract<TimelineEvent, { type: T }>;
export type BudgetFigures = z.infer<typeof budgetFiguresSchema>;
export type Usage = z.infer<typeof usageSchema>;

export const EVENT_TYPES = timelineEventSchema.options.map((o) => o.shape.type.value) as EventType[];

/** An event as stored and read back: `data` is the event without its `type`. */
export type StoredEvent = {
  [T in EventType]: {
    id: number;
    ts: number;
    taskId: string | null;
    type: T;
    data: Omit<EventOf<T>, 'type'>;
  };
}[EventType];
