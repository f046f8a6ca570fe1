import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveCredentials } from '../../src/host/egress/index.js';
import { CoworkError } from '../../src/host/errors.js';
import { KeychainSecretStore, resolveAnthropicKey } from '../../src/host/secrets/index.js';

/**
 * Against a real Secret Service: this file starts its own private D-Bus session bus and
 * gnome-keyring-daemon (Debian packages dbus + gnome-keyring), with HOME and XDG dirs in a
 * temp folder, so it never touches a developer's real keychain and needs nothing from CI but
 * the two packages. @napi-rs/keyring reads DBUS_SESSION_BUS_ADDRESS once per process, which
 * is why the no-keychain case lives in its own file (secrets-no-keychain.test.ts).
 */

let home: string;
let bus: ChildProcess;
let keyring: ChildProcess;
const saved = { ...process.env };

function allFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((f) => join(dir, f))
    .filter((f) => statSync(f, { throwIfNoEntry: false })?.isFile());
}

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'secrets-home-'));
  const env = {
    ...process.env,
    HOME: home,
    XDG_DATA_HOME: join(home, '.local/share'),
    XDG_CONFIG_HOME: join(home, '.config'),
  };
  // With XDG_RUNTIME_DIR set, gnome-keyring uses its standard control dir and prints nothing,
  // and the printed line is how we know it owns the bus name.
  delete env.XDG_RUNTIME_DIR;
  bus = spawn('dbus-daemon', ['--session', '--nofork', '--print-address=1'], {
    env,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const address = await new Promise<string>((resolve, reject) => {
    bus.once('error', reject);
    bus.stdout?.once('data', (b: Buffer) => resolve(b.toString().trim()));
  });
  keyring = spawn('gnome-keyring-daemon', ['--unlock', '--components=secrets', '--foreground'], {
    env: { ...env, DBUS_SESSION_BUS_ADDRESS: address },
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  keyring.stdin?.end('test-keyring-password');
  // The daemon prints its environment once it has claimed the bus name.
  await new Promise<void>((resolve, reject) => {
    keyring.once('error', reject);
    keyring.once('exit', (code) => reject(new Error(`gnome-keyring-daemon exited with ${code}`)));
    keyring.stdout?.once('data', () => resolve());
  });
  Object.assign(process.env, env, { DBUS_SESSION_BUS_ADDRESS: address });
});

afterAll(() => {
  keyring?.kill();
  bus?.kill();
  process.env = saved;
  if (home) rmSync(home, { recursive: true, force: true });
});

describe('KeychainSecretStore on a real Secret Service', () => {
  const VALUE = 'sk-ant-api03-integration-VALUE-5b1e';

  it('sets, reads back, lists names only, and removes', async () => {
    const store = new KeychainSecretStore({ service: 'cowork-vm-test' });
    expect(await store.list()).toEqual([]);
    expect(await store.get('anthropic')).toBeUndefined();
    await store.set('anthropic', VALUE);
    await store.set('telegram', '123:abc');
    // a second store object reads what the first wrote: it is in the keychain, not in memory
    const again = new KeychainSecretStore({ service: 'cowork-vm-test' });
    expect(await again.get('anthropic')).toBe(VALUE);
    expect(await again.list()).toEqual(['anthropic', 'telegram']);
    expect(JSON.stringify(await again.list())).not.toContain(VALUE);

    await store.set('anthropic', `${VALUE}-2`);
    expect(await again.get('anthropic')).toBe(`${VALUE}-2`);
    expect(await again.list()).toEqual(['anthropic', 'telegram']);

    expect(await store.remove('anthropic')).toBe(true);
    expect(await store.remove('anthropic')).toBe(false);
    expect(await again.get('anthropic')).toBeUndefined();
    expect(await again.list()).toEqual(['telegram']);
    await store.remove('telegram');
    expect(await again.list()).toEqual([]);
  });

  it('keeps services apart', async () => {
    const a = new KeychainSecretStore({ service: 'cowork-vm-test-a' });
    const b = new KeychainSecretStore({ service: 'cowork-vm-test-b' });
    await a.set('anthropic', 'only-in-a');
    expect(await b.get('anthropic')).toBeUndefined();
    expect(await b.list()).toEqual([]);
    await a.remove('anthropic');
  });

  it('rejects names that are not plain identifiers, including the index entry', async () => {
    const store = new KeychainSecretStore({ service: 'cowork-vm-test' });
    for (const bad of ['', '../x', 'a b', '__cowork-vm-index__', 'A'.repeat(65)]) {
      const err = await store.set(bad, 'v').catch((e: unknown) => e);
      expect(CoworkError.is(err, 'invalidArgument')).toBe(true);
    }
    await expect(store.set('ok', '')).rejects.toMatchObject({ code: 'invalidArgument' });
  });

  it('writes no plain-text copy of a value anywhere under HOME', async () => {
    const store = new KeychainSecretStore({ service: 'cowork-vm-test' });
    await store.set('anthropic', VALUE);
    for (const f of allFiles(home)) expect(readFileSync(f).includes(VALUE), f).toBe(false);
    await store.remove('anthropic');
  });

  it('resolveAnthropicKey prefers ANTHROPIC_API_KEY, else the keychain, else says how to set one', async () => {
    const store = new KeychainSecretStore({ service: 'cowork-vm-test' });
    await expect(resolveAnthropicKey(store, {})).rejects.toMatchObject({
      code: 'notFound',
      message: expect.stringContaining('cowork-vm secrets set anthropic'),
    });
    await store.set('anthropic', VALUE);
    expect(await resolveAnthropicKey(store, {})).toEqual({ key: VALUE, source: 'keychain' });
    expect(await resolveAnthropicKey(store, { ANTHROPIC_API_KEY: 'from-env' })).toEqual({
      key: 'from-env',
      source: 'env',
    });
    await store.remove('anthropic');
  });

  it('egress credential rules read their secret from the keychain, and a missing one stops the start', async () => {
    const store = new KeychainSecretStore({ service: 'cowork-vm-test' });
    const rule = {
      host: 'api.github.com',
      header: 'Authorization',
      value: 'Bearer {secret}',
      secret: 'github',
    };
    await expect(resolveCredentials([rule], store)).rejects.toMatchObject({
      code: 'notFound',
      message: expect.stringContaining(
        'egress.credentials[0] (host api.github.com): the keychain has no secret "github" — run `cowork-vm secrets set github`',
      ),
    });
    await store.set('github', 'ghp_test');
    const [resolved] = await resolveCredentials([rule], store);
    expect(resolved).toMatchObject({
      host: 'api.github.com',
      header: 'authorization',
      headerValue: 'Bearer ghp_test',
      secretName: 'github',
    });
    await store.remove('github');
  });
});
