import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControllerApi, TaskStartRequest } from '../../src/host/api/controller.js';
import { ControlClient, ControlServer, ControlStore } from '../../src/host/control/index.js';

/**
 * The contract's typed client over a real WebSocket on loopback: the same calls as `call`, with
 * the server applying the contract's schemas (tasks.start's limits reach the controller).
 */
const started: { req: TaskStartRequest; origin: unknown }[] = [];
const api = {
  status: async () => ({ state: 'running' }),
  tasksStart: async (req: TaskStartRequest, origin: unknown) => {
    started.push({ req, origin });
    return { id: 't-typed' };
  },
  tasksCancel: () => {},
  approvalsAnswer: () => {},
  timelineSubscribe: () => () => {},
} as unknown as ControllerApi;

let dir: string;
let store: ControlStore;
let server: ControlServer;
let client: ControlClient;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cowork-typed-'));
  store = new ControlStore({ file: join(dir, 'devices.sqlite') });
  server = new ControlServer({ api, store, listen: { host: '127.0.0.1', port: 0 }, serverId: 'typed' });
  const { url } = await server.start();
  client = await ControlClient.connect(url);
  await client.authenticate(await client.pair(store.createPairingCode({ role: 'operator' }).code, 'typed'));
});

afterAll(async () => {
  await client.close();
  await server.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('ControlClient.typed()', () => {
  it('calls contract methods and gets their results', async () => {
    const api = client.typed();
    const limits = { maxTokens: 500, maxIterations: 2 };
    await expect(api.call('tasks.start', { prompt: 'do it', limits })).resolves.toEqual({ id: 't-typed' });
    expect(started).toEqual([
      {
        req: { prompt: 'do it', limits },
        origin: { id: expect.stringMatching(/^device:/), context: 'gateway' },
      },
    ]);
    await expect(api.call('tasks.cancel', { id: 't-typed' })).resolves.toEqual({ cancelled: 't-typed' });
    await expect(api.call('approvals.answer', { id: 'a1', kind: 'deny', message: 'no' })).resolves.toEqual({
      answered: 'a1',
      kind: 'deny',
    });
  });

  it('is refused what the contract refuses, with the role table applied', async () => {
    const api = client.typed();
    await expect(
      api.call('approvals.answer', { id: 'a1', kind: 'deny', message: 'm'.repeat(2001) }),
    ).rejects.toMatchObject({ code: 'invalidArgument' });
    await expect(api.call('stop')).rejects.toMatchObject({
      code: 'denied',
      message: expect.stringMatching(/needs role 'admin'/),
    });
  });
});
