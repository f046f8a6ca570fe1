import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, cli } from '../helpers/cli.js';

/**
 * `cowork-vm start --listen` off loopback without TLS is refused by the built CLI before any VM
 * boots and before anything is bound. The image cache is empty on purpose: were the check
 * missing, the start would fail on the missing image instead, with a different message.
 * Nothing here connects anywhere but 127.0.0.1.
 */

let root: string;
let env: NodeJS.ProcessEnv;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const p = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
  });
}

beforeAll(() => {
  assertBuilt();
  root = mkdtempSync(join(tmpdir(), 'cli-listen-'));
  mkdirSync(join(root, 'ws'));
  env = {
    ...process.env,
    HOME: root,
    COWORK_VM_STATE_DIR: join(root, 'state'),
    COWORK_VM_CONFIG_DIR: join(root, 'cfg'),
    COWORK_VM_CACHE_DIR: join(root, 'cache'),
  };
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('cowork-vm start --listen', () => {
  for (const detach of [false, true]) {
    it(`refuses 0.0.0.0 with --allow-remote but no TLS${detach ? ' (--detach)' : ''}, saying how to configure it`, async () => {
      const port = await freePort();
      const args = [
        'start',
        '--workspace',
        join(root, 'ws'),
        '--listen',
        `0.0.0.0:${port}`,
        '--allow-remote',
      ];
      const r = cli(detach ? [...args, '--detach'] : args, env);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/refusing to listen on 0\.0\.0\.0 without TLS/);
      expect(r.stderr).toMatch(/\[control\] tls = \{ cert = "[^"]+", key = "[^"]+" \}/);
      expect(r.stderr).not.toMatch(/image/i);
      expect(await refused(port)).toBe(true);
    });
  }

  it('refuses a non-loopback address without --allow-remote, and an IPv6 wildcard without TLS', async () => {
    const port = await freePort();
    const ws = join(root, 'ws');
    const a = cli(['start', '--workspace', ws, '--listen', `0.0.0.0:${port}`], env);
    expect(a.stderr).toMatch(/reachable from other machines.*allowRemote/);
    const b = cli(['start', '--workspace', ws, '--listen', `[::]:${port}`, '--allow-remote'], env);
    expect(b.stderr).toMatch(/without TLS/);
    expect(await refused(port)).toBe(true);
  });

  it('gets past the listen check when the config names a certificate (then fails on the missing image, not on TLS)', () => {
    const cfg = join(root, 'tls.toml');
    writeFileSync(cfg, '[control]\ntls = { cert = "/nonexistent/cert.pem", key = "/nonexistent/key.pem" }\n');
    const r = cli(
      ['start', '--config', cfg, '--workspace', join(root, 'ws'), '--listen', '0.0.0.0:1', '--allow-remote'],
      env,
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).not.toMatch(/without TLS/);
    expect(r.stderr).toMatch(/image "base" is not built/);
  });
});
