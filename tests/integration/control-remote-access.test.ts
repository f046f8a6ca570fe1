import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ControllerApi } from '../../src/host/api/controller.js';
import { RemoteAccess } from '../../src/host/channels/index.js';
import { configSchema } from '../../src/host/config/schema.js';
import { ControlClient, createPairingCode, listDevices } from '../../src/host/control/index.js';
import { CoworkError } from '../../src/host/errors.js';
import { hostPaths } from '../../src/host/paths.js';
import type { SecretStore } from '../../src/host/secrets/types.js';
import { TelegramApiEmulator } from '../helpers/telegram-api.js';

/** Controller-side wiring: config → control server + Telegram channel over one device store. */

const api: ControllerApi = {
  status: async () =>
    ({
      workspace: '/w',
      state: 'running',
      pid: 1,
      vm: { driver: 'qemu', accel: 'tcg', share: '9p', image: 'base', cpus: 1, memoryMiB: 512 },
      pendingApprovals: 0,
      tasks: { running: 0 },
    }) as const,
  exec: async () => {
    throw new CoworkError('internal', 'not used');
  },
  approvalsList: () => [],
  approvalsAnswer: () => {},
  tasksList: () => [],
  tasksGet: (id) => {
    throw new CoworkError('notFound', id);
  },
  tasksStart: async () => ({ id: 't' }),
  tasksCancel: () => {},
  timelineQuery: () => [],
  timelineSubscribe: () => () => {},
  stop: async () => {},
};

/** The keychain seam, holding one token in memory (the real keychain is tested in secrets.test.ts). */
function secretsWith(values: Record<string, string>): SecretStore {
  return {
    get: async (n) => values[n],
    set: async () => {},
    remove: async () => false,
    list: async () => Object.keys(values).sort(),
  };
}

const TOKEN = '42:remote-test';
let dir: string;
let tg: TelegramApiEmulator;
let apiRoot: string;
let remote: RemoteAccess | undefined;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cowork-remote-'));
  tg = new TelegramApiEmulator(TOKEN);
  apiRoot = await tg.start();
});

afterEach(async () => {
  await remote?.close();
  remote = undefined;
  await tg.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('RemoteAccess', () => {
  it('is off by default', async () => {
    const paths = hostPaths({ COWORK_VM_STATE_DIR: dir, HOME: dir });
    remote = await RemoteAccess.start({ config: configSchema.parse({}), api, paths });
    expect(remote.server).toBeUndefined();
    expect(remote.telegram).toBeUndefined();
  });

  it('serves the WebSocket API and Telegram on one device store; a CLI pairing code works on both', async () => {
    const paths = hostPaths({ COWORK_VM_STATE_DIR: dir, HOME: dir });
    const config = configSchema.parse({ channels: { telegram: { enabled: true, apiRoot } } });
    remote = await RemoteAccess.start({
      config,
      api,
      paths,
      listen: '127.0.0.1:0',
      secrets: secretsWith({ telegram: TOKEN }),
    });
    const ws = await ControlClient.connect(remote.url!);
    const creds = await ws.pair(createPairingCode({ role: 'viewer' }, paths).code, 'laptop');
    await ws.authenticate(creds);
    await expect(ws.call('status')).resolves.toMatchObject({ state: 'running' });
    await ws.close();

    const { code } = createPairingCode({ role: 'operator' }, paths);
    tg.userSends({ id: 7, first_name: 'Bo' }, `/pair ${code}`);
    await tg.waitFor(
      () => tg.sentTo(7).find((m) => m.text?.startsWith('Paired as operator')),
      'pairing reply',
    );
    expect(
      listDevices({}, paths)
        .map((d) => d.channel)
        .sort(),
    ).toEqual(['control', 'telegram']);
  });

  it('fails closed when Telegram is enabled without a token, leaving nothing listening', async () => {
    const paths = hostPaths({ COWORK_VM_STATE_DIR: dir, HOME: dir });
    const config = configSchema.parse({ channels: { telegram: { enabled: true, apiRoot } } });
    await expect(
      RemoteAccess.start({ config, api, paths, listen: '127.0.0.1:0', secrets: secretsWith({}) }),
    ).rejects.toMatchObject({ code: 'unavailable', message: expect.stringMatching(/secrets set telegram/) });
    expect(tg.calls).toEqual([]);
  });

  it('refuses a remote --listen without --allow-remote', async () => {
    const paths = hostPaths({ COWORK_VM_STATE_DIR: dir, HOME: dir });
    await expect(
      RemoteAccess.start({ config: configSchema.parse({}), api, paths, listen: '0.0.0.0:0' }),
    ).rejects.toMatchObject({ code: 'denied' });
  });
});
