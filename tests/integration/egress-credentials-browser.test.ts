import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumArgs } from '../../src/host/browser/guest-browser.js';
import { compileCredentialRule, EgressProxy } from '../../src/host/egress/index.js';
import { guestTrust } from '../../src/host/sandbox/guest-trust.js';
import type { Sandbox } from '../../src/host/sandbox/sandbox.js';
import { type HttpsUpstream, makeTestCa, startHttpsUpstream } from '../helpers/https-upstream.js';
import { makeTestEnv, startGuestBehindProxy, type TestSandboxEnv } from '../helpers/sandbox.js';

// Chromium in the browser image, with the flags the browser tools launch it with, loads a page
// from a host with a credential rule: it trusts the sandbox CA through the agent's NSS database
// (filled by cowork-init from the seed), and the upstream gets the secret added. One boot.

const SECRET = `tok-${randomBytes(16).toString('hex')}`;
const upstreamCa = makeTestCa('upstream test CA');
let t: TestSandboxEnv;
let api: HttpsUpstream;
let proxy: EgressProxy;
let sandbox: Sandbox;

beforeAll(async () => {
  t = makeTestEnv('egress-cred-browser');
  api = await startHttpsUpstream('127.0.0.1', upstreamCa.issue('api.test'), (_req, res) => {
    const page = '<html><body><p id="x">credentialed page</p></body></html>';
    res.writeHead(200, { 'content-type': 'text/html', 'content-length': Buffer.byteLength(page) });
    res.end(page);
    return true;
  });
  proxy = new EgressProxy({
    rules: { allow: ['api.test'] },
    testResolve: { 'api.test': '127.0.0.1' },
    allowTestResolve: true,
    credentials: [
      compileCredentialRule(
        { host: 'api.test', header: 'Authorization', value: 'Bearer {secret}', secret: 'api' },
        SECRET,
      ),
    ],
    upstreamRoots: [upstreamCa.certPem],
    dial: ({ address, port }) => net.connect(port === 443 ? api.port : port, address),
  });
  const { port: proxyPort } = await proxy.start();
  const trust = guestTrust({
    guest: { trustHostCAs: false, extraCAs: [] },
    sandboxCaPem: proxy.caCertPem,
    env: {},
  });
  sandbox = await startGuestBehindProxy(t, proxyPort, {
    image: 'browser',
    cpus: 2,
    memoryMiB: 1536,
    trust: trust.cas.map((c) => c.pem),
  });
});

afterAll(async () => {
  await sandbox?.stop();
  await proxy?.close();
  await api?.close();
  t?.cleanup();
});

describe('Chromium and a credential rule', () => {
  it('loads the page over TLS the sandbox CA terminates, with the secret added on the host', async () => {
    const flags = chromiumArgs({ proxyUrl: sandbox.info.guestProxyUrl ?? '', profileDir: '/tmp/prof' })
      .filter((f) => !f.startsWith('--remote-debugging') && f !== 'about:blank')
      .map((f) => `'${f}'`)
      .join(' ');
    const r = await sandbox.exec(
      `timeout 150 chromium ${flags} --dump-dom https://api.test/page 2>/tmp/chromium.err`,
      {
        timeoutMs: 180_000,
      },
    );
    expect(r.stdout).toContain('credentialed page');
    expect(api.seen.find((s) => s.url === '/page')?.headers.authorization).toBe(`Bearer ${SECRET}`);
  });
});
