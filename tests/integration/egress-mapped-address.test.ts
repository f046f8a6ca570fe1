import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type EgressEvent,
  EgressEventSchema,
  EgressProxy,
  type EgressProxyOptions,
  type LookupFn,
  parseIp,
} from '../../src/host/egress/index.js';
import { closeServer, connectVia, listen, proxyRequest } from '../helpers/egress.js';

/**
 * IPv4 rules against the other spellings of the same address, through the real proxy on
 * loopback. The target is always 127.0.0.1 (every spelling below reaches it, or a translator
 * that would), and the dialer connects only when what it is asked to dial is loopback here: a
 * broken fix can reach the local upstream, never anything beyond this host.
 */

let upstream: net.Server;
let upstreamPort: number;
let upstreamHits = 0;
const upstreamSockets = new Set<net.Socket>();
const proxies: EgressProxy[] = [];
let dialled: string[] = [];

beforeAll(async () => {
  upstream = net.createServer((s) => {
    upstreamHits += 1;
    upstreamSockets.add(s);
    s.on('close', () => upstreamSockets.delete(s));
    s.on('error', () => s.destroy());
    s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
  });
  await listen(upstream);
  upstreamPort = (upstream.address() as net.AddressInfo).port;
});
afterAll(async () => {
  for (const s of upstreamSockets) s.destroy();
  await closeServer(upstream);
});
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  dialled = [];
  upstreamHits = 0;
});

/** Connects only to loopback (127/8 or ::1, in any form Node would dial as loopback). */
const loopbackOnly: EgressProxyOptions['dial'] = ({ address, family, port }) => {
  dialled.push(`${address}:${port}`);
  const ip = parseIp(address);
  const isLoopback = ip !== null && (ip.text === '::1' || (family === 4 && ip.bytes[0] === 127));
  if (isLoopback) return net.connect({ host: address, port, family });
  const s = new net.Socket();
  process.nextTick(() => s.destroy(new Error(`test dialer refused non-loopback ${address}`)));
  return s;
};

async function startProxy(opts: EgressProxyOptions) {
  const events: EgressEvent[] = [];
  const proxy = new EgressProxy({
    dial: loopbackOnly,
    onEvent: (e) => events.push(EgressEventSchema.parse(e)),
    ...opts,
  });
  proxies.push(proxy);
  const { port } = await proxy.start();
  return { proxy, port, events };
}

const P = () => upstreamPort;

/** Every way to write 127.0.0.1 as a host, and what each is. */
const LOOPBACK_SPELLINGS: [string, string][] = [
  ['127.0.0.1', 'dotted'],
  ['2130706433', 'decimal'],
  ['0x7f000001', 'hex'],
  ['0177.0.0.1', 'octal'],
  ['0x7f.1', 'hex short'],
  ['127.1', 'short'],
  ['[::ffff:127.0.0.1]', 'IPv4-mapped'],
  ['[::ffff:7f00:1]', 'IPv4-mapped, hex'],
  ['[0:0:0:0:0:ffff:7f00:0001]', 'IPv4-mapped, long'],
  ['[::127.0.0.1]', 'IPv4-compatible'],
  ['[::7f00:1]', 'IPv4-compatible, hex'],
  ['[::ffff:0:127.0.0.1]', 'SIIT'],
  ['[64:ff9b::127.0.0.1]', 'NAT64 well-known prefix'],
  ['[64:ff9b::7f00:1]', 'NAT64 well-known prefix, hex'],
  ['[64:ff9b:1::7f00:1]', 'local-use NAT64 /96'],
  ['[64:ff9b:1:7f00:0:100::]', 'local-use NAT64 /48'],
  ['[2002:7f00:1::]', '6to4'],
];

describe('a deny entry for an IPv4 address holds for every spelling of it', () => {
  it('control: the allow rule alone lets the mapped form through, dialled as 127.0.0.1', async () => {
    // Proves the attack below would reach the upstream if the deny rule were not applied.
    const { port } = await startProxy({ rules: { allow: [`127.0.0.1:${P()}`] } });
    const res = await proxyRequest(port, `http://[::ffff:7f00:1]:${P()}/`);
    expect(res.status).toBe(200);
    expect(dialled).toEqual([`127.0.0.1:${P()}`]);
    expect(upstreamHits).toBe(1);
  });

  it.each(LOOPBACK_SPELLINGS)('refuses %s (%s) over plain HTTP and CONNECT', async (host) => {
    const { port, events } = await startProxy({
      rules: { allow: [`127.0.0.1:${P()}`, `*:${P()}`], deny: ['127.0.0.1'] },
    });
    const res = await proxyRequest(port, `http://${host}:${P()}/`);
    expect(res.status).toBe(403);
    const tunnel = await connectVia(port, `${host}:${P()}`);
    expect(tunnel.status).toBe(403);
    tunnel.socket.destroy();
    expect(events.map((e) => [e.decision, e.stage, e.rule])).toEqual([
      ['deny', 'deny-list', '127.0.0.1'],
      ['deny', 'deny-list', '127.0.0.1'],
    ]);
    expect(dialled).toEqual([]);
    expect(upstreamHits).toBe(0);
  });

  it.each(['[::ffff:127.0.0.1]', '[::ffff:7f00:1]', '[64:ff9b::7f00:1]'])(
    'a deny entry written as %s denies 127.0.0.1 itself',
    async (entry) => {
      const { port } = await startProxy({ rules: { allow: [`127.0.0.1:${P()}`], deny: [entry] } });
      expect((await proxyRequest(port, `http://127.0.0.1:${P()}/`)).status).toBe(403);
      expect((await proxyRequest(port, `http://2130706433:${P()}/`)).status).toBe(403);
      expect(dialled).toEqual([]);
      expect(upstreamHits).toBe(0);
    },
  );

  it.each([
    ['::ffff:127.0.0.1', 'IPv4-mapped'],
    ['::ffff:0:7f00:1', 'SIIT'],
    ['64:ff9b::7f00:1', 'NAT64'],
    ['::127.0.0.1', 'IPv4-compatible'],
  ])('refuses a name whose AAAA answer is %s (%s)', async (address) => {
    const lookup: LookupFn = async () => [{ address, family: 6 }];
    const { port, events } = await startProxy({
      rules: { allow: [`aaaa.test:${P()}`, `127.0.0.1:${P()}`], deny: ['127.0.0.1'] },
      lookup,
    });
    expect((await proxyRequest(port, `http://aaaa.test:${P()}/`)).status).toBe(403);
    expect((await connectVia(port, `aaaa.test:${P()}`)).status).toBe(403);
    expect(events.map((e) => e.stage)).toEqual(['deny-list', 'deny-list']);
    expect(dialled).toEqual([]);
    expect(upstreamHits).toBe(0);
  });
});

describe('the SSRF guard judges the address a literal or an answer reaches', () => {
  it.each(LOOPBACK_SPELLINGS)('refuses %s (%s) when no rule names the address', async (host) => {
    const { port, events } = await startProxy({ rules: { allow: [`*:${P()}`] } });
    expect((await proxyRequest(port, `http://${host}:${P()}/`)).status).toBe(403);
    expect((await connectVia(port, `${host}:${P()}`)).status).toBe(403);
    expect(events.map((e) => e.stage)).toEqual(['ssrf', 'ssrf']);
    expect(dialled).toEqual([]);
    expect(upstreamHits).toBe(0);
  });

  it.each(['::ffff:7f00:1', '::ffff:a9fe:a9fe', '::ffff:0:a00:1', '64:ff9b::c0a8:1', '2002:a9fe:a9fe::'])(
    'refuses a name that resolves to %s',
    async (address) => {
      const lookup: LookupFn = async () => [{ address, family: 6 }];
      const { port, events } = await startProxy({ rules: { allow: [`evil.test:${P()}`] }, lookup });
      expect((await connectVia(port, `evil.test:${P()}`)).status).toBe(403);
      expect(events.map((e) => e.stage)).toEqual(['ssrf']);
      expect(dialled).toEqual([]);
    },
  );

  it.each(['[64:ff9b::7f00:1]', '[::ffff:0:7f00:1]', '[64:ff9b:1::7f00:1]'])(
    'an allow entry naming %s (a translator’s loopback) does not open 127.0.0.1 here',
    async (entry) => {
      const { port, events } = await startProxy({ rules: { allow: [`${entry}:${P()}`] } });
      for (const host of ['127.0.0.1', '2130706433', '[::ffff:7f00:1]', '[::7f00:1]']) {
        expect((await proxyRequest(port, `http://${host}:${P()}/`)).status, host).toBe(403);
      }
      expect(events.map((e) => e.stage)).toEqual(['ssrf', 'ssrf', 'ssrf', 'ssrf']);
      expect(dialled).toEqual([]);
      expect(upstreamHits).toBe(0);
    },
  );

  it('an allow entry in the mapped form names 127.0.0.1 itself', async () => {
    const { port } = await startProxy({ rules: { allow: [`[::ffff:127.0.0.1]:${P()}`] } });
    expect((await proxyRequest(port, `http://127.0.0.1:${P()}/`)).status).toBe(200);
    expect(dialled).toEqual([`127.0.0.1:${P()}`]);
  });

  it('an allow entry naming 127.0.0.1 opens its mapped form (dialled as 127.0.0.1), not its NAT64 or 6to4 forms', async () => {
    const { port, events } = await startProxy({ rules: { allow: [`127.0.0.1:${P()}`] } });
    const mapped = await connectVia(port, `[::ffff:127.0.0.1]:${P()}`);
    expect(mapped.status).toBe(200);
    mapped.socket.destroy();
    expect(dialled).toEqual([`127.0.0.1:${P()}`]);
    // Loopback behind a translator is the translator's loopback, not what the rule names.
    for (const host of ['[64:ff9b::7f00:1]', '[64:ff9b:1::7f00:1]', '[::ffff:0:7f00:1]', '[2002:7f00:1::]']) {
      expect((await proxyRequest(port, `http://${host}:${P()}/`)).status, host).toBe(403);
    }
    // The translated forms match the rule and are then refused by the guard; the 6to4 form is a
    // different destination (a relay), so the rule does not cover it and its port stays closed.
    expect(events.slice(1).map((e) => e.stage)).toEqual(['ssrf', 'ssrf', 'ssrf', 'port']);
    expect(dialled).toHaveLength(1);
  });
});
