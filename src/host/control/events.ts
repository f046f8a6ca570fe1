import { z } from 'zod';

/**
 * Security events the control API and the channels record in the timeline: every failure and
 * every lockout (issue 6). The Timeline (src/host/timeline) is passed in as a `SecurityRecorder`;
 * recording never throws into the caller and never blocks a refusal.
 */
export const securityEventSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('control.auth_ok'), ip: z.string(), deviceId: z.string() }),
  z.strictObject({
    type: z.literal('control.auth_failed'),
    ip: z.string(),
    deviceId: z.string().optional(),
    reason: z.string(),
  }),
  z.strictObject({ type: z.literal('control.pair_failed'), identity: z.string(), reason: z.string() }),
  z.strictObject({
    type: z.literal('control.paired'),
    identity: z.string(),
    deviceId: z.string(),
    name: z.string(),
    role: z.string(),
    channel: z.string(),
  }),
  z.strictObject({
    type: z.literal('control.lockout'),
    scope: z.enum(['auth', 'pair']),
    key: z.string(),
    until: z.number(),
  }),
  z.strictObject({
    type: z.literal('control.refused_locked'),
    scope: z.enum(['auth', 'pair']),
    key: z.string(),
  }),
  z.strictObject({ type: z.literal('control.device_revoked'), deviceId: z.string(), by: z.string() }),
  z.strictObject({
    type: z.literal('control.protocol_error'),
    ip: z.string(),
    deviceId: z.string().optional(),
    reason: z.string(),
  }),
  z.strictObject({ type: z.literal('control.origin_refused'), ip: z.string(), origin: z.string() }),
  z.strictObject({
    type: z.literal('channel.refused'),
    channel: z.string(),
    user: z.string(),
    reason: z.string(),
  }),
  z.strictObject({ type: z.literal('channel.open_mode'), channel: z.string() }),
]);
export type SecurityEvent = z.infer<typeof securityEventSchema>;

export interface SecurityRecorder {
  record(taskId: string | null, event: SecurityEvent): void;
}

/** Calls the recorder, swallowing its errors: a broken timeline must not turn a refusal into a crash. */
export function recordSafely(recorder: SecurityRecorder | undefined, event: SecurityEvent): void {
  if (!recorder) return;
  try {
    recorder.record(null, event);
  } catch {
    // The refusal itself already happened; losing the record is the lesser failure.
  }
}

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
