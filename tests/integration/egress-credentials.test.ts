import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileCredentialRule, type EgressEvent, EgressProxy } from '../../src/host/egress/index.js';
import { connectVia, type ProxyResponse, proxyRequest, requestText } from '../helpers/egress.js';
import { type HttpsUpstream, makeTestCa, startHttpsUpstream } from '../helpers/https-upstream.js';

// The credential rule on the wire, from node clients on loopback (the guest's curl, git and
// Python do the same in egress-credentials-guest.test.ts). `api.test` has a rule; `other.test`
// has none (a blind tunnel); `bad.test` has a rule but an upstream certificate the host's roots
// do not vouch for. Each name maps to its own 127.0.0.x, and the dialer sends 443 there to the
// upstream's real port.

const SECRET = `s3cr3t-${randomBytes(12).toString('hex')}`;
const upstreamCa = makeTestCa('upstream test CA');
const rogueCa = makeTestCa('rogue CA');
let api: HttpsUpstream;
let other: HttpsUpstream;
let bad: HttpsUpstream;
let proxy: EgressProxy;
let proxyPort: number;
const events: EgressEvent[] = [];

beforeAll(async () => {
  api = await startHttpsUpstream('127.0.0.1', upstreamCa.issue('api.test'), (req, res) => {
    if (req.url !== '/redirect') return false;
    res.writeHead(302, { location: 'https://other.test/landing', 'content-length': 0 });
    res.end();
    return true;
  });
  other = await startHttpsUpstream('127.0.0.2', upstreamCa.issue('other.test'));
  bad = await startHttpsUpstream('127.0.0.3', rogueCa.issue('bad.test'));
  const ports: Record<string, number> = {
    '127.0.0.1': api.port,
    '127.0.0.2': other.port,
    '127.0.0.3': bad.port,
  };
  proxy = new EgressProxy({
    rules: { allow: ['api.test', 'other.test', 'bad.test', 'api.test:8443'] },
    testResolve: { 'api.test': '127.0.0.1', 'other.test': '127.0.0.2', 'bad.test': '127.0.0.3' },
    allowTestResolve: true,
    credentials: [
      compileCredentialRule(
        {
          host: 'api.test',
          header: 'Authorization',
          value: 'Bearer {secret}',
          secret: 'api',
          methods: ['GET', 'POST'],
          paths: ['/echo*', '/redirect', '/repos/me/*'],
        },
        SECRET,
      ),
      compileCredentialRule(
        { host: 'bad.test', header: 'x-api-key', value: '{secret}', secret: 'bad' },
        SECRET,
      ),
    ],
    upstreamRoots: [upstreamCa.certPem],
    onEvent: (e) => events.push(e),
    dial: ({ address, port }) => net.connect(port === 443 ? (ports[address] ?? 1) : port, address),
  });
  ({ port: proxyPort } = await proxy.start());
});

afterAll(async () => {
  await proxy?.close();
  for (const u of [api, other, bad]) await u?.close();
});

/** HTTPS through the proxy's CONNECT, trusting only `ca`, as curl with HTTPS_PROXY would. */
async function httpsVia(
  host: string,
  path: string,
  ca: string,
  opts: { method?: string; headers?: Record<string, string>; port?: number } = {},
): Promise<ProxyResponse> {
  const tunnel = await connectVia(proxyPort, `${host}:${opts.port ?? 443}`);
  if (tunnel.status !== 200) return { status: tunnel.status, headers: {}, body: tunnel.body };
  return requestText({
    createConnection: () => tls.connect({ socket: tunnel.socket, servername: host, ca: [ca] }),
    method: opts.method ?? 'GET',
    path,
    headers: { host, ...opts.headers },
  });
}

const ours = () => proxy.caCertPem ?? '';
const lastEvent = (pred: (e: EgressEvent) => boolean) => events.filter(pred).at(-1);

describe('a host with a credential rule', () => {
  it('gets the keychain secret added, over TLS the sandbox CA terminates', async () => {
    const r = await httpsVia('api.test', '/echo?q=1', ours());
    expect(r.status).toBe(200);
    expect(api.seen.at(-1)?.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(api.seen.at(-1)?.servername).toBe('api.test'); // a fresh, named TLS connection upstream
    expect(JSON.stringify(r)).not.toContain(SECRET);
    expect(lastEvent((e) => e.url === 'https://api.test/echo')).toMatchObject({
      kind: 'http',
      decision: 'allow',
      stage: 'credential',
      credential: 'api',
      status: 200,
    });
  });

  it('is not reachable with the upstream certificate: the guest sees the sandbox CA', async () => {
    await expect(httpsVia('api.test', '/echo', upstreamCa.certPem)).rejects.toThrow(/certificate/i);
  });

  it('refuses a request that brings its own credential, and records why', async () => {
    const before = api.seen.length;
    for (const [name, value] of [
      ['Authorization', 'Bearer attacker-token'],
      ['X-Api-Key', 'attacker-key'],
      ['Cookie', 'session=attacker'],
    ] as const) {
      const r = await httpsVia('api.test', '/echo', ours(), { headers: { [name]: value } });
      expect(r.status).toBe(403);
      expect(r.body).toContain(`its own ${name.toLowerCase()} header`);
      expect(lastEvent((e) => e.stage === 'credential' && e.decision === 'deny')?.reason).toContain(
        name.toLowerCase(),
      );
    }
    expect(api.seen.length).toBe(before);
  });

  it('refuses methods and paths outside the rule, and paths that could be read as another', async () => {
    const before = api.seen.length;
    expect((await httpsVia('api.test', '/echo', ours(), { method: 'DELETE' })).status).toBe(403);
    expect((await httpsVia('api.test', '/admin', ours())).status).toBe(403);
    expect((await httpsVia('api.test', '/repos/me/../other/x', ours())).status).toBe(403);
    expect((await httpsVia('api.test', '/repos/me/%2e%2e/other', ours())).status).toBe(403);
    expect((await httpsVia('api.test', '/echo', ours(), { headers: { host: 'other.test' } })).status).toBe(
      421,
    );
    expect(api.seen.length).toBe(before);
    expect((await httpsVia('api.test', '/repos/me/x/issues', ours(), { method: 'POST' })).status).toBe(200);
  });

  it('is refused over plain HTTP and on another port, so the secret never travels in the clear', async () => {
    const plain = await proxyRequest(proxyPort, 'http://api.test/echo', {
      headers: { authorization: 'Bearer attacker' },
    });
    expect(plain.status).toBe(403);
    expect(plain.body).toContain('credential rule');
    expect((await connectVia(proxyPort, 'api.test:8443')).status).toBe(403);
  });

  it("does not follow redirects: the next host is the client's own request, without the secret", async () => {
    const r = await httpsVia('api.test', '/redirect', ours());
    expect(r.status).toBe(302);
    expect(r.headers.location).toBe('https://other.test/landing');
    const next = await httpsVia('other.test', '/landing', upstreamCa.certPem);
    expect(next.status).toBe(200);
    for (const s of other.seen) expect(JSON.stringify(s.headers)).not.toContain(SECRET);
  });

  it('fails closed with a clear error when the upstream certificate does not verify', async () => {
    const r = await httpsVia('bad.test', '/', ours());
    expect(r.status).toBe(502);
    expect(r.body).toMatch(
      /certificate bad\.test presented could not be verified against the host's trusted roots/,
    );
    expect(bad.seen).toHaveLength(0);
    expect(lastEvent((e) => e.host === 'bad.test' && e.kind === 'http')?.error).toMatch(
      /could not be verified/,
    );
  });
});

describe('a host without a credential rule', () => {
  it("stays a blind tunnel: the client sees the upstream's own certificate, nothing is added", async () => {
    await expect(httpsVia('other.test', '/x', ours())).rejects.toThrow(/certificate/i);
    const r = await httpsVia('other.test', '/y', upstreamCa.certPem, {
      headers: { authorization: 'Bearer mine' },
    });
    expect(r.status).toBe(200);
    expect(other.seen.at(-1)?.headers.authorization).toBe('Bearer mine');
    expect(events.filter((e) => e.host === 'other.test' && e.kind === 'http')).toHaveLength(0);
  });
});

describe('the secret', () => {
  it('appears in no event the proxy recorded', () => {
    expect(events.length).toBeGreaterThan(10);
    expect(JSON.stringify(events)).not.toContain(SECRET);
  });
});
