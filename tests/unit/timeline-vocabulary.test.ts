import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type SecurityEvent,
  type SecurityRecorder,
  securityEventSchema,
} from '../../src/host/control/events.js';
import { type EgressTimelineSink, toTimelineEvent } from '../../src/host/egress/events.js';
import { SECURITY_EVENTS } from '../../src/host/timeline/events.js';
import { EVENT_TYPES, Timeline } from '../../src/host/timeline/index.js';

/**
 * Other folders emit timeline events in their own words (control API security events, egress
 * requests). Their emitters swallow recording errors on purpose, so a vocabulary mismatch would
 * lose those records silently: this checks, against the real emitters' schemas, that the
 * Timeline takes every one of them.
 */
let dir: string;
let tl: Timeline;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cowork-vocab-'));
  tl = Timeline.open(join(dir, 'timeline.db'));
});
afterEach(() => {
  tl.close();
  rmSync(dir, { recursive: true, force: true });
});

const securitySamples: SecurityEvent[] = [
  { type: 'control.auth_ok', ip: '127.0.0.1', deviceId: 'd1' },
  { type: 'control.auth_failed', ip: '127.0.0.1', reason: 'bad signature' },
  { type: 'control.pair_failed', identity: 'ip:127.0.0.1', reason: 'wrong code' },
  {
    type: 'control.paired',
    identity: 'ip:127.0.0.1',
    deviceId: 'd2',
    name: 'phone',
    role: 'approver',
    channel: 'ws',
  },
  { type: 'control.lockout', scope: 'auth', key: '127.0.0.1', until: 1 },
  { type: 'control.refused_locked', scope: 'pair', key: '127.0.0.1' },
  { type: 'control.device_revoked', deviceId: 'd2', by: 'cli' },
  { type: 'control.protocol_error', ip: '127.0.0.1', deviceId: 'd1', reason: 'bad frame' },
  { type: 'control.origin_refused', ip: '127.0.0.1', origin: 'https://evil.example' },
  { type: 'channel.refused', channel: 'telegram', user: '42', reason: 'not paired' },
  { type: 'channel.open_mode', channel: 'telegram' },
];

describe('timeline vocabulary shared with other folders', () => {
  it('security events have one definition: the timeline vocabulary', () => {
    expect(securityEventSchema.options).toHaveLength(SECURITY_EVENTS.length);
    for (const [i, o] of securityEventSchema.options.entries()) expect(o).toBe(SECURITY_EVENTS[i]);
  });

  it('records every control-API security event type', () => {
    const types = securityEventSchema.options.map((o) => o.shape.type.value);
    expect(securitySamples.map((s) => s.type).sort()).toEqual([...types].sort());
    const recorder: SecurityRecorder = tl;
    for (const s of securitySamples) {
      expect(EVENT_TYPES).toContain(s.type);
      securityEventSchema.parse(s);
      recorder.record(null, s);
    }
    expect(tl.query({ types: ['control.*', 'channel.*'] })).toHaveLength(securitySamples.length);
  });

  it('records the egress proxy event with its details', () => {
    const sink: EgressTimelineSink = tl;
    const event = toTimelineEvent({
      type: 'egress.request',
      taskId: null,
      kind: 'connect',
      method: 'CONNECT',
      host: 'pypi.org',
      port: 443,
      decision: 'deny',
      stage: 'ssrf',
      reason: 'resolves to a loopback address',
      address: '127.0.0.1',
      bytesIn: 0,
      bytesOut: 0,
      durationMs: 2,
    });
    sink.record(null, event);
    const [stored] = tl.query({ types: ['egress.request'] });
    expect(stored?.data).toMatchObject({ host: 'pypi.org', decision: 'deny' });
  });
});
