import { z } from 'zod';

/**
 * Frames on the local control socket (Unix socket in the sandbox state dir, mode 0600):
 * newline-delimited JSON, each line validated with these strict schemas on both ends.
 *   client → server  { type:'req', id, method, params }
 *   server → client  { type:'res', id, ok:true, result } | { type:'res', id, ok:false, error:{code,message} }
 *                    { type:'stream', id, stream:'stdout'|'stderr', data(base64) }   (exec output while it runs)
 *                    { type:'event', id, event }                                    (subscriptions)
 *   client → server  { type:'cancel', id }                                          (abort request id)
 */
export const LOCAL_METHODS = [
  'status',
  'exec',
  'approvals.list',
  'approvals.answer',
  'tasks.list',
  'tasks.get',
  'tasks.start',
  'tasks.cancel',
  'tasks.events',
  'timeline.query',
  'timeline.subscribe',
  'stop',
] as const;
export type LocalMethod = (typeof LOCAL_METHODS)[number];

export const MAX_LOCAL_FRAME_BYTES = 16 * 1024 * 1024;

export const ClientFrame = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('req'),
      id: z.number().int().nonnegative(),
      method: z.enum(LOCAL_METHODS),
      params: z.record(z.string(), z.unknown()).default({}),
    })
    .strict(),
  z.object({ type: z.literal('cancel'), id: z.number().int().nonnegative() }).strict(),
]);
export type ClientFrame = z.infer<typeof ClientFrame>;

export const ErrorBody = z.object({ code: z.string(), message: z.string() }).strict();

export const ServerFrame = z.union([
  z.object({ type: z.literal('res'), id: z.number(), ok: z.literal(true), result: z.unknown() }).strict(),
  z.object({ type: z.literal('res'), id: z.number(), ok: z.literal(false), error: ErrorBody }).strict(),
  z
    .object({
      type: z.literal('stream'),
      id: z.number(),
      stream: z.enum(['stdout', 'stderr']),
      data: z.string(),
    })
    .strict(),
  z.object({ type: z.literal('event'), id: z.number(), event: z.unknown() }).strict(),
]);
export type ServerFrame = z.infer<typeof ServerFrame>;

// Params of each method, validated by the server before dispatch.
export const ExecParams = z
  .object({
    command: z.string().min(1),
    context: z.enum(['local', 'agent', 'gateway']).default('local'),
    cwd: z.string().optional(),
    timeoutMs: z.number().int().positive().max(86_400_000).optional(),
    maxOutputBytes: z.number().int().positive().optional(),
    stdin: z.string().optional(),
    taskId: z.string().optional(),
  })
  .strict();

export const AnswerParams = z
  .object({
    id: z.string().min(1),
    kind: z.enum(['approve-once', 'approve-task', 'deny']),
    message: z.string().max(4000).optional(),
  })
  .strict();

export const TaskIdParams = z.object({ id: z.string().min(1) }).strict();
export const TaskEventsParams = z.object({ id: z.string().min(1).optional() }).strict();
export const TasksListParams = z.object({ limit: z.number().int().positive().max(1000).optional() }).strict();
export const TasksStartParams = z
  .object({
    prompt: z.string().min(1),
    model: z.string().optional(),
    context: z.enum(['local', 'agent', 'gateway']).default('agent'),
    /** ANTHROPIC_API_KEY from the caller's environment: the explicit override the issue allows. */
    apiKeyOverride: z.string().optional(),
    limits: z
      .object({
        maxTokens: z.number().optional(),
        maxCostUsd: z.number().optional(),
        maxIterations: z.number().optional(),
      })
      .strict()
      .optional(),
  })
  .strict();
export const TimelineQueryParams = z
  .object({
    taskId: z.string().optional(),
    afterId: z.number().int().nonnegative().optional(),
    limit: z.number().int().positive().max(10_000).optional(),
  })
  .strict();
export const EmptyParams = z.object({}).strict();
