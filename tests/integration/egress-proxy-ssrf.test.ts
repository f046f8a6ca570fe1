import type http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type EgressEvent,
  EgressEventSchema,
  EgressProxy,
  type LookupFn,
  type ResolvedAddress,
  systemLookup,
} from '../../src/host/egress/index.js';
import {
  closeServer,
  connectVia,
  listen,
  proxyRequest,
  type SeenRequest,
  startOrigin,
} from '../helpers/egress.js';

// The SSRF guard attacked through the real proxy. Every rule allows every host ("*"), so only
// the guard stands between the request and the address. The dialer never reaches the address
// it is given: it records it and connects to a local canary instead, so a failing guard shows
// up as a recorded dial (and a canary connection) without any packet leaving loopback.

const FAKE_DNS: Record<string, ResolvedAddress[]> = {
  'internal.test': [{ address: '10.0.0.5', family: 4 }],
  'meta.test': [{ address: '169.254.169.254', family: 4 }],
  'loop.test': [{ address: '127.0.0.1', family: 4 }],
  'v6loop.test': [{ address: '::1', family: 6 }],
  'mapped.test': [{ address: '::ffff:127.0.0.1', family: 6 }],
  'ula.test': [{ address: 'fd00::5', family: 6 }],
  'mixed.test': [
    { address: '203.0.113.10', family: 4 },
    { address: '192.168.1.1', family: 4 },
  ],
};

let canary: net.Server;
let canaryPort: number;
let canaryHits = 0;
let origin: { server: http.Server; port: number; seen: SeenRequest[] };
const dialled: string[] = [];
const looked: string[] = [];
const events: EgressEvent[] = [];
let proxy: EgressProxy;
let port: number;

const lookup: LookupFn = async (name) => {
  looked.push(name);
  const fake = FAKE_DNS[name];
  if (fake) return fake;
  if (name === 'localhost') return systemLookup(name); // the host's own resolver: /etc/hosts
  throw Object.assign(new Error(`test resolver: ${name} is unknown`), { code: 'ENOTFOUND' });
};

beforeAll(async () => {
  canary = net.createServer((s) => {
    canaryHits += 1;
    s.destroy();
  });
  await listen(canary);
  canaryPort = (canary.address() as net.AddressInfo).port;
  origin = await startOrigin();
  proxy = new EgressProxy({
    rules: { allowAll: true, allow: ['*:22', '*:8080'] },
    // A mapping for one name must not open loopback to any other name.
    testResolve: { 'site.test': '127.0.0.1' },
    allowTestResolve: true,
    lookup,
    dial: ({ address, port: p }) => {
      dialled.push(`${address}:${p}`);
      return net.connect(canaryPort, '127.0.0.1');
    },
    onEvent: (e) => events.push(EgressEventSchema.parse(e)),
  });
  port = (await proxy.start()).port;
});

afterAll(async () => {
  await proxy.close();
  await closeServer(canary);
  await closeServer(origin.server);
});

/** Sends a request line byte for byte (the Node client refuses some of these hosts itself). */
function rawRequest(requestTarget: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => {
      const text = Buffer.concat(chunks).toString();
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), body: text });
    });
    s.on('error', reject);
    s.write(Buffer.from(`GET ${requestTarget} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, 'utf8'));
  });
}

// 66 spellings of loopback, private, link-local, CGNAT, metadata, multicast, broadcast,
// unspecified and reserved destinations, and names that resolve to them.
const CORPUS = [
  '127.0.0.1',
  '127.1',
  '127.0.1',
  '127.000.000.001',
  '127.0.0.1.',
  '2130706433',
  '0x7f000001',
  '017700000001',
  '0177.0.0.1',
  '0x7f.0.0.1',
  '0x7f.1',
  '0X7F.0X0.0X0.0X1',
  '%31%32%37.0.0.1',
  encodeURIComponent('１２７.０.０.１'), // fullwidth digits, percent-encoded: IDNA maps them to 127.0.0.1
  '127.255.255.254',
  '0.0.0.0',
  '0',
  '0x0',
  '10.0.0.1',
  '012.0.0.1',
  '167772161',
  '172.16.0.1',
  '172.31.255.254',
  '192.168.0.1',
  '3232235777',
  '0xc0.0xa8.1.1',
  '169.254.169.254',
  '2852039166',
  '0xa9fea9fe',
  '0251.0376.0251.0376',
  '169.254.1.1',
  '100.64.0.1',
  '100.100.100.200',
  '224.0.0.1',
  '255.255.255.255',
  '240.0.0.1',
  '[::1]',
  '[0:0:0:0:0:0:0:1]',
  '[::]',
  '[::ffff:127.0.0.1]',
  '[::ffff:7f00:1]',
  '[::ffff:0:127.0.0.1]',
  '[::127.0.0.1]',
  '[::ffff:10.0.0.1]',
  '[::ffff:a9fe:a9fe]',
  '[fd00:ec2::254]',
  '[fe80::1]',
  '[fc00::1]',
  '[ff02::1]',
  '[64:ff9b::127.0.0.1]',
  '[64:ff9b::a9fe:a9fe]',
  '[2002:7f00:1::1]',
  '[2002:a00:1::]',
  '[2001::1]',
  'metadata.google.internal',
  'METADATA.GOOGLE.INTERNAL.',
  'metadata.goog',
  'localhost',
  'LocalHost.',
  'internal.test',
  'meta.test',
  'loop.test',
  'v6loop.test',
  'mapped.test',
  'ula.test',
  'mixed.test',
];

describe('SSRF guard', () => {
  it('has a corpus of at least 40 spellings', () => {
    expect(CORPUS.length).toBeGreaterThanOrEqual(40);
  });

  it.each(CORPUS)('refuses http://%s/ through forwarding', async (host) => {
    const before = events.length;
    const res = await rawRequest(`http://${host}/`);
    expect(res.status).toBe(403);
    expect(res.body).toMatch(/egress policy/);
    expect(events.slice(before).map((e) => [e.decision, e.stage])).toEqual([['deny', 'ssrf']]);
    expect(dialled).toEqual([]);
  });

  it.each(CORPUS)('refuses CONNECT %s:443', async (host) => {
    const res = await connectVia(port, `${host}:443`);
    expect(res.status).toBe(403);
    expect(res.body).toMatch(/loopback, private, link-local/);
    expect(dialled).toEqual([]);
  });

  it('refuses raw non-ASCII hosts at the HTTP parser, before any decision', async () => {
    expect((await rawRequest('http://１２７.０.０.１/')).status).toBe(400);
    expect((await connectVia(port, '１２７.０.０.１:443')).status).toBe(400);
    expect(dialled).toEqual([]);
  });

  it('is not fooled by userinfo, fragments or backslashes around an allowed name', async () => {
    for (const target of [
      'http://site.test@127.0.0.1/',
      'http://example.test:80@10.0.0.1/',
      'http://127.0.0.1#@example.test/',
      'http://127.0.0.1\\@example.test/',
    ]) {
      const res = await rawRequest(target);
      expect([400, 403], target).toContain(res.status);
    }
    for (const authority of [
      'example.test@127.0.0.1:443',
      'example.test:443@127.0.0.1:443',
      'example.test/x:443',
    ]) {
      expect((await connectVia(port, authority)).status, authority).toBe(400);
    }
    expect(dialled).toEqual([]);
  });

  it('refuses guarded addresses on any port a rule allows', async () => {
    for (const target of ['127.0.0.1:22', '10.0.0.1:8080', '[::1]:22', 'localhost:8080']) {
      expect((await connectVia(port, target)).status, target).toBe(403);
    }
    expect((await proxyRequest(port, `http://127.0.0.1:${port}/`)).status).toBe(403); // the proxy itself
    expect(dialled).toEqual([]);
  });

  it('never looks up a metadata name, and looked up every other name through the injected resolver', () => {
    expect(looked.some((n) => n.includes('metadata'))).toBe(false);
    expect(looked).toContain('localhost');
    expect(looked).toContain('mixed.test');
  });

  it('nothing reached the canary', () => {
    expect(canaryHits).toBe(0);
  });
});

describe('DNS rebinding', () => {
  it('resolves each request once and dials exactly the address it checked', async () => {
    let calls = 0;
    const rebinding: LookupFn = async () => {
      calls += 1;
      // A public-looking answer first, then loopback (documentation range: nothing is dialled there).
      return [{ address: calls === 1 ? '203.0.113.10' : '127.0.0.1', family: 4 }];
    };
    const seen: string[] = [];
    const p = new EgressProxy({
      rules: { allow: ['rebind.test'] },
      lookup: rebinding,
      dial: ({ address, port: dport }) => {
        seen.push(`${address}:${dport}`);
        return net.connect(origin.port, '127.0.0.1'); // stands in for 203.0.113.10
      },
    });
    const { port: pport } = await p.start();
    try {
      const first = await proxyRequest(pport, 'http://rebind.test/first');
      expect(first.status).toBe(200);
      expect(calls).toBe(1);
      expect(seen).toEqual(['203.0.113.10:80']);

      // The next request resolves again (once) and now gets loopback: refused, nothing dialled.
      const second = await proxyRequest(pport, 'http://rebind.test/second');
      expect(second.status).toBe(403);
      expect(second.body).toContain('rebind.test resolves to 127.0.0.1, a loopback address');
      expect(calls).toBe(2);
      expect(seen).toEqual(['203.0.113.10:80']);
      expect(origin.seen.map((s) => s.url)).toEqual(['/first']);
    } finally {
      await p.close();
    }
  });

  it('a CONNECT tunnel is dialled at its single checked answer', async () => {
    let calls = 0;
    const seen: string[] = [];
    const p = new EgressProxy({
      rules: { allow: ['rebind.test'] },
      lookup: async () => {
        calls += 1;
        return [{ address: calls === 1 ? '203.0.113.10' : '127.0.0.1', family: 4 }];
      },
      dial: ({ address, port: dport }) => {
        seen.push(`${address}:${dport}`);
        return net.connect(origin.port, '127.0.0.1');
      },
    });
    const { port: pport } = await p.start();
    try {
      const tunnel = await connectVia(pport, 'rebind.test:443');
      expect(tunnel.status).toBe(200);
      tunnel.socket.destroy();
      expect(calls).toBe(1);
      expect(seen).toEqual(['203.0.113.10:443']);
    } finally {
      await p.close();
    }
  });
});
