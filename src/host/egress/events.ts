import { z } from 'zod';

/**
 * The `egress.request` timeline event: one per proxied request or CONNECT tunnel, allowed or
 * not. bytesIn = bytes from the remote side to the guest; bytesOut = bytes from the guest to
 * the remote side (bodies for HTTP forwarding, raw tunnel bytes for CONNECT).
 */
export const EgressEventSchema = z
  .object({
    type: z.literal('egress.request'),
    taskId: z.string().nullable(),
    kind: z.enum(['http', 'connect']),
    method: z.string(),
    host: z.string(),
    port: z.number().int().min(0).max(65535),
    /** http only: scheme, host, port and path; the query string is left out (it often carries tokens). */
    url: z.string().optional(),
    decision: z.enum(['allow', 'deny']),
    stage: z.enum([
      'invalid',
      'limit',
      'deny-list',
      'allow-list',
      'port',
      'task',
      'ask',
      'default',
      'ssrf',
      'resolve',
      'approval',
      'credential',
    ]),
    reason: z.string(),
    rule: z.string().optional(),
    /** The keychain entry whose value the proxy added (its name; the value is never recorded). */
    credential: z.string().optional(),
    approvedBy: z.string().optional(),
    address: z.string().optional(),
    status: z.number().int().optional(),
    bytesIn: z.number().int().nonnegative(),
    bytesOut: z.number().int().nonnegative(),
    durationMs: z.number().nonnegative(),
    error: z.string().optional(),
  })
  .strict();

export type EgressEvent = z.infer<typeof EgressEventSchema>;

/**
 * The event as the timeline's strict `egress.request` schema (src/host/timeline/events.ts)
 * takes it: everything but `taskId`, which is the record's own column.
 */
export type TimelineEgressEvent = Omit<EgressEvent, 'taskId'>;

export function toTimelineEvent(e: EgressEvent): TimelineEgressEvent {
  const { taskId: _taskId, ...event } = e;
  return event;
}

/** The part of the Timeline (src/host/timeline) the proxy needs: `Timeline` itself fits. */
export interface EgressTimelineSink {
  record(taskId: string | null, event: TimelineEgressEvent): unknown;
}
