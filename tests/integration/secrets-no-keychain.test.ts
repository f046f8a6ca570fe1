import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveCredentials } from '../../src/host/egress/index.js';
import { CoworkError } from '../../src/host/errors.js';
import {
  KeychainSecretStore,
  NO_KEYCHAIN_MESSAGE,
  resolveAnthropicKey,
} from '../../src/host/secrets/index.js';

/**
 * No Secret Service (a headless Linux without a session bus): every operation fails closed
 * with a message that says what to do, and nothing is written anywhere — there is no file
 * fallback. Its own file because @napi-rs/keyring reads the bus address once per process.
 */

let home: string;
const saved = { ...process.env };

beforeAll(() => {
  home = mkdtempSync(join(tmpdir(), 'secrets-nokeychain-'));
  Object.assign(process.env, {
    HOME: home,
    XDG_DATA_HOME: join(home, 'data'),
    XDG_CONFIG_HOME: join(home, 'config'),
    XDG_STATE_HOME: join(home, 'state'),
    XDG_RUNTIME_DIR: home,
    DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(home, 'no-such-bus')}`,
  });
});

afterAll(() => {
  process.env = saved;
  rmSync(home, { recursive: true, force: true });
});

describe('KeychainSecretStore without a keychain', () => {
  it('refuses to set, get, list or remove, with the documented message, and writes no file', async () => {
    const store = new KeychainSecretStore({ service: 'cowork-vm-test' });
    for (const op of [
      () => store.set('anthropic', 'sk-ant-never-written'),
      () => store.get('anthropic'),
      () => store.list(),
      () => store.remove('anthropic'),
    ]) {
      const err = await op().catch((e: unknown) => e);
      expect(CoworkError.is(err, 'unavailable')).toBe(true);
      expect((err as Error).message).toBe(NO_KEYCHAIN_MESSAGE);
    }
    expect(readdirSync(home)).toEqual([]);
  });

  it('still accepts ANTHROPIC_API_KEY as the explicit override, and otherwise fails closed', async () => {
    const store = new KeychainSecretStore({ service: 'cowork-vm-test' });
    expect(await resolveAnthropicKey(store, { ANTHROPIC_API_KEY: 'sk-env' })).toEqual({
      key: 'sk-env',
      source: 'env',
    });
    await expect(resolveAnthropicKey(store, {})).rejects.toMatchObject({
      code: 'unavailable',
      message: expect.stringContaining('ANTHROPIC_API_KEY'),
    });
    expect(readdirSync(home)).toEqual([]);
  });

  it('egress credential rules fail closed without a keychain: the start is refused with the message', async () => {
    const store = new KeychainSecretStore({ service: 'cowork-vm-test' });
    const rule = {
      host: 'api.github.com',
      header: 'Authorization',
      value: 'Bearer {secret}',
      secret: 'github',
    };
    await expect(resolveCredentials([rule], store)).rejects.toMatchObject({
      code: 'unavailable',
      message: NO_KEYCHAIN_MESSAGE,
    });
  });
});
