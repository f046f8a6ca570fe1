import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileCredentialRule, type EgressEvent, EgressProxy } from '../../src/host/egress/index.js';
import { guestTrust } from '../../src/host/sandbox/guest-trust.js';
import type { Sandbox } from '../../src/host/sandbox/sandbox.js';
import { Timeline } from '../../src/host/timeline/index.js';
import { gitBackend, type HttpsUpstream, makeTestCa, startHttpsUpstream } from '../helpers/https-upstream.js';
import { makeTestEnv, startGuestBehindProxy, type TestSandboxEnv } from '../helpers/sandbox.js';

// Credential rules and guest trust from a real QEMU guest (TCG), one boot for the file: curl,
// git and Python in the guest reach loopback upstreams through the real egress proxy. Names map
// to 127.0.0.x through the test resolver and the dialer sends port 443 to each upstream's port.
//   api.test   credential rule (Authorization: Bearer {secret}); also a git server that
//              answers 401 without that header, as a forge does
//   bad.test   credential rule, but its certificate is from a CA the host does not trust
//   other.test no rule: a blind tunnel; its certificate is from the upstream test CA
//   corp.test  no rule; its certificate is from a CA only the host's added-certificates folder
//              (a test copy) trusts, as a company's TLS-inspecting CA is

const SECRET = `tok-${randomBytes(16).toString('hex')}`;
/** Matches the secret without containing it, so a grep's own command line is not a hit. */
const SECRET_RE = `${SECRET.slice(0, 8)}[${SECRET[8]}]${SECRET.slice(9)}`;
const upstreamCa = makeTestCa('upstream test CA');
const rogueCa = makeTestCa('rogue CA');
const corpCa = makeTestCa('corp inspecting CA');
let t: TestSandboxEnv;
let api: HttpsUpstream;
let bad: HttpsUpstream;
let other: HttpsUpstream;
let corp: HttpsUpstream;
let proxy: EgressProxy;
let sandbox: Sandbox;
let timeline: Timeline;
const events: EgressEvent[] = [];

beforeAll(async () => {
  t = makeTestEnv('egress-cred-guest');
  const gitRoot = join(t.root, 'git');
  mkdirSync(gitRoot);
  execFileSync('git', ['init', '-q', '--bare', '-b', 'main', join(gitRoot, 'me', 'repo.git')]);
  execFileSync('git', ['-C', join(gitRoot, 'me', 'repo.git'), 'config', 'http.receivepack', 'true']);
  const src = join(t.root, 'src');
  execFileSync('git', ['init', '-q', '-b', 'main', src]);
  writeFileSync(join(src, 'README'), 'from the forge\n');
  const who = ['-c', 'user.email=a@b.test', '-c', 'user.name=forge'];
  execFileSync('git', ['-C', src, 'add', 'README']);
  execFileSync('git', ['-C', src, ...who, 'commit', '-qm', 'initial']);
  execFileSync('git', ['-C', src, 'push', '-q', join(gitRoot, 'me', 'repo.git'), 'main']);
  api = await startHttpsUpstream('127.0.0.1', upstreamCa.issue('api.test'), (req, res, body) => {
    if (req.url === '/redirect') {
      res.writeHead(302, { location: 'https://other.test/landing', 'content-length': 0 });
      res.end();
      return true;
    }
    if (!req.url?.startsWith('/me/repo.git/')) return false;
    if (req.headers.authorization !== `Bearer ${SECRET}`) {
      res.writeHead(401, { 'www-authenticate': 'Bearer', 'content-length': 0 });
      res.end();
    } else gitBackend(gitRoot, req, res, body);
    return true;
  });
  bad = await startHttpsUpstream('127.0.0.3', rogueCa.issue('bad.test'));
  other = await startHttpsUpstream('127.0.0.2', upstreamCa.issue('other.test'));
  corp = await startHttpsUpstream('127.0.0.4', corpCa.issue('corp.test'));
  const ports: Record<string, number> = {
    '127.0.0.1': api.port,
    '127.0.0.2': other.port,
    '127.0.0.3': bad.port,
    '127.0.0.4': corp.port,
  };
  timeline = Timeline.open(join(t.root, 'timeline.db'));
  proxy = new EgressProxy({
    rules: { allow: ['api.test', 'bad.test', 'other.test', 'corp.test'] },
    testResolve: {
      'api.test': '127.0.0.1',
      'other.test': '127.0.0.2',
      'bad.test': '127.0.0.3',
      'corp.test': '127.0.0.4',
    },
    allowTestResolve: true,
    credentials: [
      compileCredentialRule(
        {
          host: 'api.test',
          header: 'Authorization',
          value: 'Bearer {secret}',
          secret: 'api',
          methods: ['GET', 'POST'],
          paths: ['/echo*', '/redirect', '/me/repo.git/*'],
        },
        SECRET,
      ),
      compileCredentialRule(
        { host: 'bad.test', header: 'Authorization', value: 'Bearer {secret}', secret: 'bad' },
        SECRET,
      ),
    ],
    upstreamRoots: [upstreamCa.certPem],
    timeline,
    onEvent: (e) => events.push(e),
    dial: ({ address, port }) => net.connect(port === 443 ? (ports[address] ?? 1) : port, address),
  });
  const { port: proxyPort } = await proxy.start();

  // The host's added-certificates folder (a test copy): the corp CA, as update-ca-certificates reads it.
  const hostCaDir = join(t.root, 'host-ca');
  mkdirSync(join(hostCaDir, 'corp'), { recursive: true });
  writeFileSync(join(hostCaDir, 'corp', 'inspecting.crt'), corpCa.certPem);
  const trust = guestTrust({
    guest: { trustHostCAs: true, extraCAs: [] },
    sandboxCaPem: proxy.caCertPem,
    env: { COWORK_VM_TEST_RESOLVE: '1', COWORK_VM_TEST_HOST_CA_DIR: hostCaDir },
  });
  expect(trust.cas.map((c) => c.source)).toEqual(['sandbox', 'host']);
  writeFileSync(join(t.workspace, 'upstream-ca.pem'), upstreamCa.certPem);

  sandbox = await startGuestBehindProxy(t, proxyPort, { trust: trust.cas.map((c) => c.pem) });
});

afterAll(async () => {
  await sandbox?.stop();
  await proxy?.close();
  timeline?.close();
  for (const u of [api, bad, other, corp]) await u?.close();
  t?.cleanup();
});

async function sh(command: string): Promise<{ code: number | null; out: string; err: string }> {
  const r = await sandbox.exec(command, { timeoutMs: 120_000 });
  return { code: r.exitCode, out: r.stdout.trim(), err: r.stderr.trim() };
}

const curlStatus = (args: string) => sh(`curl -sS -m 30 -o /dev/null -w '%{http_code}' ${args}`);

describe('a credential rule, used from the guest', () => {
  it('curl, Python requests and urllib reach the host with the secret added, trusting the sandbox CA unchanged', async () => {
    expect(await sh('curl -sS -m 30 https://api.test/echo')).toMatchObject({
      code: 0,
      out: '{"method":"GET","url":"/echo"}',
    });
    expect(api.seen.at(-1)?.headers.authorization).toBe(`Bearer ${SECRET}`);
    const py = await sh(
      `python3 -c 'import requests; r = requests.get("https://api.test/echo-requests", timeout=30); print(r.status_code, r.json()["url"])'`,
    );
    expect(py).toMatchObject({ code: 0, out: '200 /echo-requests' });
    const urllib = await sh(
      `python3 -c 'import urllib.request as u; print(u.urlopen("https://api.test/echo-urllib", timeout=30).status)'`,
    );
    expect(urllib).toMatchObject({ code: 0, out: '200' });
    for (const url of ['/echo-requests', '/echo-urllib']) {
      expect(api.seen.find((s) => s.url === url)?.headers.authorization).toBe(`Bearer ${SECRET}`);
    }
  });

  it("Node's fetch goes through the proxy unchanged: the secret is added, its own Authorization refused", async () => {
    const ok = await sh(
      `node -e 'fetch("https://api.test/echo-node").then(async (r) => console.log(r.status, await r.text()))'`,
    );
    expect(ok).toMatchObject({ code: 0, out: '200 {"method":"GET","url":"/echo-node"}' });
    expect(api.seen.find((s) => s.url === '/echo-node')?.headers.authorization).toBe(`Bearer ${SECRET}`);
    const before = api.seen.length;
    const own = await sh(
      `node -e 'fetch("https://api.test/echo-node", { headers: { authorization: "Bearer attacker" } }).then(async (r) => console.log(r.status, await r.text()))'`,
    );
    expect(own.code).toBe(0);
    expect(own.out).toMatch(/^403 .*carries its own authorization header/);
    expect(api.seen.length).toBe(before);
  });

  it('git clones and pushes over HTTPS: the forge gets the credential, the guest never had it', async () => {
    const r = await sh(
      'set -e; cd /tmp; git clone -q https://api.test/me/repo.git r; cd r; cat README; echo hi > f; git add f; ' +
        'git -c user.email=a@b.test -c user.name=agent commit -qm first; git push -q origin HEAD:main 2>&1; ' +
        'git ls-remote https://api.test/me/repo.git',
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^from the forge\n[0-9a-f]{40}\tHEAD\n[0-9a-f]{40}\trefs\/heads\/main$/);
    const pushed = execFileSync('git', [
      '-C',
      join(t.root, 'git', 'me', 'repo.git'),
      'log',
      '-1',
      '--format=%s',
      'main',
    ]);
    expect(pushed.toString().trim()).toBe('first');
    const gitRequests = api.seen.filter((s) => s.url.startsWith('/me/repo.git/'));
    expect(gitRequests.some((s) => s.url.endsWith('git-receive-pack'))).toBe(true);
    for (const s of gitRequests) expect(s.headers.authorization).toBe(`Bearer ${SECRET}`);
  });

  it("refuses the guest's own Authorization, x-api-key and Cookie, and the timeline says why", async () => {
    const before = api.seen.length;
    for (const h of ['Authorization: Bearer attacker', 'X-Api-Key: attacker', 'Cookie: s=attacker']) {
      expect(await curlStatus(`-H '${h}' https://api.test/echo`)).toMatchObject({ out: '403' });
    }
    const body = await sh(`curl -sS -m 30 -H 'Authorization: token attacker' https://api.test/echo`);
    expect(body.out).toContain('carries its own authorization header');
    expect(api.seen.length).toBe(before);
    const refused = timeline
      .query({ types: ['egress.request'] })
      .filter((e) => e.data.stage === 'credential' && e.data.decision === 'deny');
    expect(refused.map((e) => e.data.reason).join('\n')).toMatch(
      /own authorization[\s\S]*own x-api-key[\s\S]*own cookie/,
    );
  });

  it('refuses a method or a path outside the rule', async () => {
    const before = api.seen.length;
    expect(await curlStatus('-X DELETE https://api.test/echo')).toMatchObject({ out: '403' });
    expect(await curlStatus('https://api.test/admin')).toMatchObject({ out: '403' });
    expect(await curlStatus('--path-as-is https://api.test/me/repo.git/../../admin')).toMatchObject({
      out: '403',
    });
    expect(await curlStatus('http://api.test/echo')).toMatchObject({ out: '403' }); // plain HTTP: never
    expect(api.seen.length).toBe(before);
  });

  it('a redirect to another host does not carry the secret', async () => {
    const r = await sh(
      'cat /etc/ssl/certs/ca-certificates.crt /workspace/upstream-ca.pem > /tmp/both.pem && ' +
        'curl -sS -m 30 -L --cacert /tmp/both.pem https://api.test/redirect',
    );
    expect(r).toMatchObject({ code: 0, out: '{"method":"GET","url":"/landing"}' });
    const landing = other.seen.find((s) => s.url === '/landing');
    expect(landing).toBeDefined();
    expect(JSON.stringify(landing?.headers)).not.toContain(SECRET);
  });

  it('an upstream certificate the host does not trust fails closed, with a clear error', async () => {
    const r = await sh(`curl -sS -m 30 -w ' %{http_code}' https://bad.test/`);
    expect(r.out).toMatch(
      /certificate bad\.test presented could not be verified against the host's trusted roots[\s\S]* 502$/,
    );
    expect(bad.seen).toHaveLength(0);
  });

  it('the secret is nowhere the guest can read: env, /proc, files', async () => {
    const r = await sh(
      `env | grep -cE '${SECRET_RE}'; ` +
        `grep -lsE '${SECRET_RE}' /proc/[0-9]*/environ /proc/[0-9]*/cmdline; ` +
        `grep -rlsE '${SECRET_RE}' /etc /home /tmp /run /var /workspace /usr/local; ` +
        `grep -rls 'PRIVATE KEY' /etc/cowork /usr/local/share/ca-certificates; echo done`,
    );
    expect(r.out).toBe('0\ndone');
  });
});

describe('hosts without a credential rule', () => {
  it('stay blind tunnels: the guest sees the upstream certificate, not the sandbox CA', async () => {
    const untrusted = await sh('curl -sS -m 30 https://other.test/blind');
    expect(untrusted.code).toBe(60); // the upstream's own certificate, which the guest does not trust
    const trusted = await sh(
      `curl -sS -m 30 --cacert /workspace/upstream-ca.pem -H 'Authorization: Bearer mine' https://other.test/blind`,
    );
    expect(trusted).toMatchObject({ code: 0, out: '{"method":"GET","url":"/blind"}' });
    expect(other.seen.at(-1)?.headers.authorization).toBe('Bearer mine');
    expect(events.filter((e) => e.host === 'other.test' && e.kind === 'http')).toHaveLength(0);
  });

  it('trust what the host trusts: a CA from the added-certificates folder works for curl, git and Python', async () => {
    expect(await sh('curl -sS -m 30 https://corp.test/hello')).toMatchObject({
      code: 0,
      out: '{"method":"GET","url":"/hello"}',
    });
    const git = await sh('git ls-remote https://corp.test/none.git 2>&1; true');
    expect(git.out).not.toMatch(/certificate|SSL/i); // TLS verified; the stand-in is no git server
    expect(corp.seen.some((s) => s.url.startsWith('/none.git/info/refs'))).toBe(true);
    const py = await sh(
      `python3 -c 'import requests; print(requests.get("https://corp.test/py", timeout=30).status_code)'`,
    );
    expect(py).toMatchObject({ code: 0, out: '200' });
    const node = await sh(`node -e 'fetch("https://corp.test/node").then((r) => console.log(r.status))'`);
    expect(node).toMatchObject({ code: 0, out: '200' });
  });

  it("Node's fetch tunnels blind to a host without a rule, and reaches the guest's own localhost directly", async () => {
    // The upstream's own certificate: Node refuses it, as curl does, until told to trust its CA.
    const untrusted = await sh(
      `node -e 'fetch("https://other.test/node-blind").then((r) => console.log(r.status), (e) => { console.log(e.cause?.code ?? e.message); process.exit(3) })'`,
    );
    expect(untrusted).toMatchObject({ code: 3, out: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    const trusted = await sh(
      `NODE_EXTRA_CA_CERTS=/workspace/upstream-ca.pem node -e 'fetch("https://other.test/node-blind", { headers: { authorization: "Bearer mine" } }).then(async (r) => console.log(r.status, await r.text()))'`,
    );
    expect(trusted).toMatchObject({ code: 0, out: '200 {"method":"GET","url":"/node-blind"}' });
    expect(other.seen.at(-1)?.headers.authorization).toBe('Bearer mine');
    expect(events.filter((e) => e.host === 'other.test' && e.kind === 'http')).toHaveLength(0);
    // NO_PROXY: a server in the guest on 127.0.0.1 is reached directly, not through the proxy.
    const local = await sh(
      `node -e 'const s = require("http").createServer((q, r) => r.end("local " + q.url)).listen(0, "127.0.0.1", () => ` +
        `fetch("http://127.0.0.1:" + s.address().port + "/here").then(async (r) => { console.log(r.status, await r.text()); s.close() }))'`,
    );
    expect(local).toMatchObject({ code: 0, out: '200 local /here' });
  });
});
