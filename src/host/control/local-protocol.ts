import { z } from 'zod';
import { type LocalMethodName, methodsOf } from '../api/contract.js';

/**
 * Frames on the local control socket (Unix socket in the sandbox state dir, mode 0600):
 * newline-delimited JSON, each line validated with these strict schemas on both ends.
 *   client → server  { type:'req', id, method, params }
 *   server → client  { type:'res', id, ok:true, result } | { type:'res', id, ok:false, error:{code,message} }
 *                    { type:'stream', id, stream:'stdout'|'stderr', data(base64) }   (exec output while it runs)
 *                    { type:'event', id, event }                                    (subscriptions)
 *   client → server  { type:'cancel', id }                                          (abort request id)
 * The methods, their params and results are the contract's; this file only frames them.
 */
/** The methods of the contract (src/host/api/contract.ts) that the local socket offers. */
export const LOCAL_METHODS = methodsOf('local') as [LocalMethodName, ...LocalMethodName[]];
export type LocalMethod = LocalMethodName;

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
