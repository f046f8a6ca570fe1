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
      'deny-list',
      'allow-list',
      'port',
      'task',
      'ask',
      'default',
      'ssrf',
      'resolve',
      'approval',
    ]),
    reason: z.string(),
    rule: z.string().optional(),
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
 * The event as the timeline's `egress.request` schema (src/host/timeline/events.ts) takes it:
 * that schema is strict and smaller, so the proxy-only details (stage, rule, dialled address,
 * URL, approver, error) are folded into `reason`.
 */
export interface TimelineEgressEvent {
  type: 'egress.request';
  method: string;
  host: string;
  port: number;
  decision: 'allow' | 'deny';
  reason: string;
  status?: number;
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
}

export function toTimelineEvent(e: EgressEvent): TimelineEgressEvent {
  const details = [
    e.url ? `url ${e.url}` : undefined,
    e.rule ? `rule ${JSON.stringify(e.rule)}` : undefined,
    e.address ? `address ${e.address}` : undefined,
    e.approvedBy ? `approved by ${e.approvedBy}` : undefined,
    e.error ? `error: ${e.error}` : undefined,
  ].filter((d): d is string => d !== undefined);
  return {
    type: 'egress.request',
    method: e.method,
    host: e.host,
    port: e.port,
    decision: e.decision,
    reason: `${e.stage}: ${e.reason}${details.length > 0 ? ` (${details.join('; ')})` : ''}`,
    ...(e.status === undefined ? {} : { status: e.status }),
    bytesIn: e.bytesIn,
    bytesOut: e.bytesOut,
    durationMs: e.durationMs,
  };
}

/** The part of the Timeline (src/host/timeline) the proxy needs: `Timeline` itself fits. */
export interface EgressTimelineSink {
  record(taskId: string | null, event: TimelineEgressEvent): unknown;
}
