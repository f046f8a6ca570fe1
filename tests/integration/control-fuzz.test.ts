import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControllerApi } from '../../src/host/api/controller.js';
import { ControlClient, ControlServer, ControlStore, METHOD_NAMES } from '../../src/host/control/index.js';

/**
 * Attack by volume: thousands of generated frames — garbage, near-miss JSON, real method names
 * with random params, forged auth frames — against a live server. Before auth nothing may reach
 * the ControllerApi; as a viewer nothing above the viewer's methods may; the server stays up.
 */

const reached: string[] = [];
const hit = <T>(name: string, value: T): T => {
  reached.push(name);
  return value;
};
const api: ControllerApi = {
  status: async () => hit('status', {} as never),
  exec: async () => hit('exec', { decision: { effect: 'deny', reasons: [], layer: 'context' } }),
  approvalsList: () => hit('approvalsList', []),
  approvalsAnswer: () => hit('approvalsAnswer', undefined),
  tasksList: () => hit('tasksList', []),
  tasksGet: (id) => hit('tasksGet', { id } as never),
  tasksStart: async () => hit('tasksStart', { id: 'x' }),
  tasksCancel: () => hit('tasksCancel', undefined),
  timelineQuery: () => hit('timelineQuery', []),
  timelineSubscribe: () => hit('timelineSubscribe', () => {}),
  stop: async () => hit('stop', undefined),
};
const VIEWER_REACHABLE = new Set([
  'status',
  'approvalsList',
  'tasksList',
  'tasksGet',
  'timelineQuery',
  'timelineSubscribe',
]);

let dir: string;
let store: ControlStore;
let server: ControlServer;
let url: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cowork-fuzz-'));
  store = new ControlStore({ file: join(dir, 'devices.sqlite') });
  server = new ControlServer({
    api,
    store,
    listen: { host: '127.0.0.1', port: 0 },
    serverId: 'fuzz',
    maxProtocolErrors: 1_000_000,
    // The fuzzer sends far more before authenticating than a client ever would.
    maxUnauthenticatedBytes: 64 * 1024 * 1024,
  });
  url = (await server.start()).url;
});

afterAll(async () => {
  await server.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const method = fc.oneof(fc.constantFrom(...METHOD_NAMES), fc.string({ maxLength: 20 }));
const frame = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.json({ maxDepth: 3 }),
  fc
    .record({
      type: fc.constantFrom('req', 'res', 'event', 'REQ', ''),
      id: fc.oneof(fc.string({ maxLength: 70 }), fc.integer(), fc.constant(null)),
      method,
      params: fc.oneof(
        fc.jsonValue({ maxDepth: 2 }),
        fc.record({ command: fc.string(), id: fc.string(), prompt: fc.string() }),
      ),
    })
    .map((o) => JSON.stringify(o)),
  fc
    .record({
      type: fc.constant('auth'),
      deviceId: fc.string({ maxLength: 70 }),
      nonce: fc.string({ maxLength: 130 }),
      hmac: fc.oneof(fc.string({ maxLength: 70 }), fc.stringMatching(/^[0-9a-f]{64}$/)),
    })
    .map((o) => JSON.stringify(o)),
);

/** Sends frames, then a sentinel request, and resolves when the sentinel's answer arrives (all processed). */
async function blast(client: ControlClient, frames: string[]): Promise<void> {
  for (const f of frames) client.sendRaw(f);
  await client.call('status').catch(() => {});
}

describe('fuzzed frames', () => {
  it('before authentication, nothing reaches the API', async () => {
    const client = await ControlClient.connect(url);
    const frames = fc.sample(
      frame.filter((f) => !f.includes('"auth"')),
      1500,
    );
    await blast(client, frames);
    expect(reached).toEqual([]);
    await client.close();
  });

  it('forged auth frames never authenticate', async () => {
    const { code } = store.createPairingCode({ role: 'admin' });
    const pairer = await ControlClient.connect(url);
    await pairer.pair(code, 'target');
    await pairer.close();
    for (const f of fc.sample(
      frame.filter((x) => x.includes('"auth"')),
      20,
    )) {
      store.lockouts.clear('auth:ip:127.0.0.1');
      const c = await ControlClient.connect(url);
      c.sendRaw(f);
      await c.call('exec', { command: 'id' }).catch(() => {});
      await c.close();
    }
    expect(reached).toEqual([]);
  });

  it('as a viewer, no frame reaches a method above the viewer role', async () => {
    const { code } = store.createPairingCode({ role: 'viewer' });
    const client = await ControlClient.connect(url);
    await client.authenticate(await client.pair(code, 'viewer'));
    await blast(client, fc.sample(frame, 1500));
    expect(reached.length).toBeGreaterThan(0); // the sentinel status at least
    expect(reached.filter((m) => !VIEWER_REACHABLE.has(m))).toEqual([]);
    await expect(client.call('status')).resolves.toBeDefined();
    await client.close();
  });
});
