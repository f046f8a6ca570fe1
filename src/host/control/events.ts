import { z } from 'zod';
import { SECURITY_EVENTS } from '../timeline/events.js';

/**
 * Security events the control API and the channels record in the timeline: every failure and
 * every lockout. Their shapes are the timeline's own (SECURITY_EVENTS in timeline/events.ts), so
 * the Timeline can be passed in as the `SecurityRecorder`; recording never throws into the
 * caller and never blocks a refusal.
 */
export const securityEventSchema = z.discriminatedUnion('type', SECURITY_EVENTS);
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
