import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControllerApi } from '../../src/host/api/controller.js';
import {
  ControlClient,
  ControlServer,
  ControlStore,
  type DeviceCredentials,
  METHOD_NAMES,
  METHODS,
  type MethodName,
  ROLES,
  type Role,
  roleAllows,
} from '../../src/host/control/index.js';

/**
 * Every method × every role × both auth states, over a live socket: a call is refused with
 * 'denied' and never reaches the ControllerApi unless the caller is authenticated and its role
 * ranks high enough; otherwise it reaches the API exactly once, with origin device:<id> in the
 * gateway context.
 */

/** The seam, not the thing under test: counts the calls that reach it. */
function recordingApi(calls: { method: string; origin?: unknown }[]): ControllerApi {
  const hit = <T>(method: string, value: T, origin?: unknown): T => {
    calls.push(origin === undefined ? { method } : { method, origin });
    return value;
  };
  return {
    status: async () =>
      hit('status', {
        workspace: '/w',
        state: 'running',
        pid: 1,
        vm: { driver: 'qemu', accel: 'tcg', share: '9p', image: 'base', cpus: 1, memoryMiB: 512 },
        pendingApprovals: 0,
        tasks: { running: 0 },
      }),
    exec: async (_r, origin) =>
      hit('exec', { decision: { effect: 'allow', reasons: [], layer: 'context' } }, origin),
    approvalsList: () => hit('approvals.list', []),
    approvalsAnswer: (_id, _v, origin) => hit('approvals.answer', undefined, origin),
    tasksList: () => hit('tasks.list', []),
    tasksGet: (id) => hit('tasks.get', { id } as never),
    tasksDiff: async (checkpoint) =>
      hit('tasks.diff', { checkpoint, patch: '', truncated: false, live: false }),
    tasksStart: async (_r, origin) => hit('tasks.start', { id: 't1' }, origin),
    tasksCancel: (_id, origin) => hit('tasks.cancel', undefined, origin),
    timelineQuery: () => hit('timeline.query', []),
    timelineSubscribe: () => hit('timeline.subscribe', () => {}),
    policyCheck: (_r, origin) =>
      hit('policy.check', { verdict: 'ask', reasons: [], layer: 'context', context: 'gateway' }, origin),
    dashboardLogin: (_r, origin) =>
      hit('dashboard.login', { url: 'http://127.0.0.1:1/', expiresAt: 0 }, origin),
    stop: async (origin) => hit('stop', undefined, origin),
  };
}

/** Valid params for each method (the devices/pair methods act on the store, not the API). */
const PARAMS: Record<MethodName, unknown> = {
  status: {},
  'tasks.list': { limit: 5 },
  'tasks.get': { id: 't1' },
  'tasks.diff': { checkpoint: 't1' },
  'tasks.start': { prompt: 'do it' },
  'tasks.cancel': { id: 't1' },
  'timeline.query': { afterId: 0 },
  'timeline.subscribe': {},
  'timeline.unsubscribe': {},
  'approvals.list': {},
  'approvals.answer': { id: 'a1', kind: 'approve-once' },
  exec: { command: 'id' },
  'devices.list': {},
  'devices.revoke': { id: 'REPLACED' },
  'pair.create': { role: 'viewer' },
  'menu.get': {},
  'policy.check': { command: 'rm -rf /tmp/x' },
  'dashboard.login': {},
  stop: {},
};

/** Methods that reach the ControllerApi (the rest act on the device store). */
const API_METHODS = new Set<string>([
  'status',
  'tasks.list',
  'tasks.get',
  'tasks.diff',
  'tasks.start',
  'tasks.cancel',
  'timeline.query',
  'timeline.subscribe',
  'approvals.list',
  'approvals.answer',
  'exec',
  'menu.get',
  'policy.check',
  'dashboard.login',
  'stop',
]);

/** What a method calls on the API, when it is not the one method of its name. */
const API_CALLS: Partial<Record<MethodName, string[]>> = { 'menu.get': ['status', 'approvals.list'] };

const EXPECTED_MIN_ROLE: Record<MethodName, Role> = {
  status: 'viewer',
  'tasks.list': 'viewer',
  'tasks.get': 'viewer',
  'tasks.diff': 'viewer',
  'tasks.start': 'operator',
  'tasks.cancel': 'operator',
  'timeline.query': 'viewer',
  'timeline.subscribe': 'viewer',
  'timeline.unsubscribe': 'viewer',
  'approvals.list': 'viewer',
  'approvals.answer': 'operator',
  exec: 'admin',
  'devices.list': 'admin',
  'devices.revoke': 'admin',
  'pair.create': 'admin',
  'menu.get': 'viewer',
  'policy.check': 'viewer',
  'dashboard.login': 'viewer',
  stop: 'admin',
};

let dir: string;
let store: ControlStore;
let server: ControlServer;
let url: string;
const calls: { method: string; origin?: unknown }[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cowork-roles-'));
  store = new ControlStore({ file: join(dir, 'devices.sqlite') });
  server = new ControlServer({
    api: recordingApi(calls),
    store,
    listen: { host: '127.0.0.1', port: 0 },
    serverId: 'roles',
    maxProtocolErrors: 10_000,
  });
  url = (await server.start()).url;
});

afterAll(async () => {
  await server.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function device(role: Role): Promise<{ creds: DeviceCredentials; client: ControlClient }> {
  const { code } = store.createPairingCode({ role });
  const client = await ControlClient.connect(url);
  const creds = await client.pair(code, role);
  await client.authenticate(creds);
  return { creds, client };
}

function paramsFor(method: MethodName): unknown {
  if (method !== 'devices.revoke') return PARAMS[method];
  const victim = store.redeemPairingCode({
    code: store.createPairingCode({ role: 'viewer' }).code,
    identity: 'test',
    name: 'victim',
    channel: 'control',
  });
  return { id: victim.device.id };
}

describe('role table', () => {
  it('is exactly the documented table (and covers every method)', () => {
    expect(Object.fromEntries(METHOD_NAMES.map((m) => [m, METHODS[m].minRole]))).toEqual(EXPECTED_MIN_ROLE);
  });

  it('ranks admin > operator > viewer', () => {
    expect(ROLES.filter((r) => roleAllows(r, 'operator'))).toEqual(['operator', 'admin']);
    expect(ROLES.filter((r) => roleAllows(r, 'admin'))).toEqual(['admin']);
    expect(ROLES.filter((r) => roleAllows(r, 'viewer'))).toEqual(['viewer', 'operator', 'admin']);
  });
});

describe('unauthenticated', () => {
  it.each(METHOD_NAMES)('%s is refused before auth and never reaches the API', async (method) => {
    const client = await ControlClient.connect(url);
    const before = calls.length;
    await expect(client.call(method, PARAMS[method])).rejects.toMatchObject({ code: 'denied' });
    expect(calls.length).toBe(before);
    await client.close();
  });
});

describe.each(ROLES)('role %s', (role) => {
  let session: { creds: DeviceCredentials; client: ControlClient };
  beforeAll(async () => {
    session = await device(role);
  });
  afterAll(async () => {
    await session.client.close();
  });

  it.each(METHOD_NAMES)(`%s`, async (method) => {
    const allowed = roleAllows(role, EXPECTED_MIN_ROLE[method]);
    const before = calls.length;
    const outcome = session.client.call(method, paramsFor(method));
    if (!allowed) {
      await expect(outcome).rejects.toMatchObject({
        code: 'denied',
        message: expect.stringMatching(/needs role/),
      });
      expect(calls.length).toBe(before);
      return;
    }
    await expect(outcome).resolves.toBeDefined();
    if (API_METHODS.has(method)) {
      expect(calls.slice(before).map((c) => c.method)).toEqual(API_CALLS[method] ?? [method]);
      const origin = calls[before]?.origin;
      if (origin !== undefined)
        expect(origin).toEqual({ id: `device:${session.creds.deviceId}`, context: 'gateway' });
    } else {
      expect(calls.length).toBe(before);
    }
    // The menu is built for the device's role: Stop only for an admin.
    if (method === 'menu.get') {
      const items = ((await outcome) as { items: { id?: string }[] }).items.map((i) => i.id);
      expect(items.includes('stop')).toBe(role === 'admin');
    }
  });
});
