import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Origin } from '../../src/host/api/controller.js';
import type { RunningController } from '../../src/host/sandbox/index.js';
import { KeychainSecretStore } from '../../src/host/secrets/index.js';
import { type HttpsUpstream, makeTestCa, startHttpsUpstream } from '../helpers/https-upstream.js';
import { makeTestEnv, startTestSandbox, type TestSandboxEnv } from '../helpers/sandbox.js';

// The whole start path of a credential rule, as `cowork-vm start` takes it: the config file
// names the rule and a keychain entry (the real Secret Service of the test session), the start
// reads the secret, the proxy gets it, the sandbox CA goes into the guest through the seed —
// and `[guest] trustHostCAs = false` keeps the host's added CA out of the guest. One boot.
//   api.test   credential rule (reachable on 443 only, so its upstream listens on 127.0.0.5:443:
//              the tests run as root); its certificate is from a CA given as [guest] extraCAs (so
//              the proxy verifies it and the guest trusts it)
//   corp.test  no rule (a blind tunnel); its certificate is from a CA that only the host's
//              added-certificates folder (a test copy) has — off by trustHostCAs = false

const local: Origin = { id: 'test', context: 'local' };
const SECRET = `tok-${randomBytes(16).toString('hex')}`;
const SECRET_NAME = `cred-start-${randomBytes(4).toString('hex')}`;
const upstreamCa = makeTestCa('start upstream CA');
const corpCa = makeTestCa('start corp CA');
const keychain = new KeychainSecretStore();
let t: TestSandboxEnv;
let api: HttpsUpstream;
let corp: HttpsUpstream;
let sb: RunningController;

beforeAll(async () => {
  t = makeTestEnv('egress-cred-start');
  api = await startHttpsUpstream('127.0.0.5', upstreamCa.issue('api.test'), undefined, 443);
  corp = await startHttpsUpstream('127.0.0.2', corpCa.issue('corp.test'));
  const caFile = join(t.root, 'upstream-ca.pem');
  writeFileSync(caFile, upstreamCa.certPem);
  const hostCaDir = join(t.root, 'host-ca');
  mkdirSync(join(hostCaDir, 'corp'), { recursive: true });
  writeFileSync(join(hostCaDir, 'corp', 'inspecting.crt'), corpCa.certPem);
  await keychain.set(SECRET_NAME, SECRET);
  const configFile = join(t.root, 'config.toml');
  writeFileSync(
    configFile,
    [
      '[egress]',
      `allow = ["api.test", "corp.test:${corp.port}"]`,
      '',
      '[[egress.credentials]]',
      'host = "api.test"',
      'header = "Authorization"',
      'value = "Bearer {secret}"',
      `secret = "${SECRET_NAME}"`,
      'paths = ["/v1/*"]',
      '',
      '[egress.testResolve]',
      '"api.test" = "127.0.0.5"',
      '"corp.test" = "127.0.0.2"',
      '',
      '[guest]',
      'trustHostCAs = false',
      `extraCAs = ["${caFile}"]`,
      '',
    ].join('\n'),
  );
  sb = await startTestSandbox(t, {
    configFile,
    env: { ...t.env, COWORK_VM_TEST_RESOLVE: '1', COWORK_VM_TEST_HOST_CA_DIR: hostCaDir },
  });
}, 600_000);

afterAll(async () => {
  await sb?.shutdown();
  await keychain.remove(SECRET_NAME).catch(() => false);
  for (const u of [api, corp]) await u?.close();
  t?.cleanup();
});

async function sh(command: string): Promise<{ code: number | null; out: string }> {
  const r = await sb.controller.exec({ command, timeoutMs: 120_000 }, local);
  expect(r.result, `not run: ${r.deniedReason}`).toBeDefined();
  return { code: r.result!.exitCode, out: `${r.result!.stdout}${r.result!.stderr}`.trim() };
}

describe('a credential rule through the real start path (config → keychain → proxy → guest)', () => {
  it('the guest reaches the rule host unchanged and the upstream gets the keychain secret', async () => {
    const r = await sh(`curl -sS -m 30 https://api.test/v1/me`);
    expect(r).toMatchObject({ code: 0, out: '{"method":"GET","url":"/v1/me"}' });
    expect(api.seen.at(-1)?.headers.authorization).toBe(`Bearer ${SECRET}`);
  });

  it("the guest's own Authorization and a path outside the rule are refused before the upstream", async () => {
    const before = api.seen.length;
    const own = await sh(
      `curl -sS -m 30 -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer attacker' https://api.test/v1/me`,
    );
    expect(own.out).toBe('403');
    const path = await sh(`curl -sS -m 30 -o /dev/null -w '%{http_code}' https://api.test/admin`);
    expect(path.out).toBe('403');
    expect(api.seen.length).toBe(before);
  });

  it('the secret is nowhere the guest can read', async () => {
    const r = await sh(
      `{ env; cat /proc/*/environ /proc/*/cmdline 2>/dev/null; } | tr '\\0' '\\n' | grep -c -- '${SECRET.slice(0, 8)}[${SECRET[8]}]${SECRET.slice(9)}'; ` +
        `grep -rlsI -- '${SECRET.slice(0, 8)}[${SECRET[8]}]${SECRET.slice(9)}' /etc /home /tmp /run /var /workspace | head -3; true`,
    );
    expect(r.out).toBe('0');
  });

  it('trustHostCAs = false: a CA only the host added is not trusted in the guest (blind tunnel, curl exit 60)', async () => {
    const r = await sh(`curl -sS -m 30 -o /dev/null https://corp.test:${corp.port}/; echo "exit $?"`);
    expect(r.out).toMatch(/^exit 60\ncurl: \(60\) SSL certificate problem/);
    // The tunnel itself was allowed: the upstream saw a TLS client, just not a request.
    expect(corp.seen).toEqual([]);
  });
});
