import { spawn } from 'node:child_process';
import type http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EgressProxy, egressRelayCommand } from '../../src/host/egress/index.js';
import { closeServer, listen, type SeenRequest, startOrigin } from '../helpers/egress.js';

// The per-connection relay QEMU's guestfwd `cmd:` runs, started the way libslirp starts it: one
// connected socket as fds 0, 1 and 2, argv split from the command line without a shell.

let origin: { server: http.Server; port: number; seen: SeenRequest[] };
let proxy: EgressProxy;
let proxyPort: number;

beforeAll(async () => {
  origin = await startOrigin();
  proxy = new EgressProxy({
    rules: { allow: [`site.test:${origin.port}`] },
    testResolve: { 'site.test': '127.0.0.1' },
    allowTestResolve: true,
  });
  proxyPort = (await proxy.start()).port;
});
afterAll(async () => {
  await proxy.close();
  await closeServer(origin.server);
});

/** Splits the command like g_shell_parse_argv does for this shape (words and one '…' word). */
function argvOf(command: string): string[] {
  return [...command.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? '');
}

/** A "guest" connection whose far end is handed to a relay process; resolves with what came back. */
async function throughRelay(payload: string): Promise<{ reply: string; exitCode: number | null }> {
  const acceptor = net.createServer();
  await listen(acceptor);
  const accepted = new Promise<net.Socket>((r) => acceptor.once('connection', r));
  const guest = net.connect((acceptor.address() as net.AddressInfo).port, '127.0.0.1');
  const relayEnd = await accepted;
  const [cmd, ...args] = argvOf(egressRelayCommand(proxyPort));
  const child = spawn(cmd as string, args, { stdio: [relayEnd, relayEnd, relayEnd] });
  relayEnd.destroy(); // the child holds its own copy, like slirp closing its end after the spawn
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const chunks: Buffer[] = [];
  guest.on('data', (d: Buffer) => chunks.push(d));
  const ended = new Promise((r) => guest.once('end', r));
  guest.write(payload);
  await ended;
  guest.end();
  const exitCode = await exited;
  await closeServer(acceptor);
  return { reply: Buffer.concat(chunks).toString(), exitCode };
}

describe('guestfwd relay', () => {
  it('carries one proxied request per guest connection and exits when it is done', async () => {
    const req = (path: string) =>
      `GET http://site.test:${origin.port}${path} HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n`;
    const first = await throughRelay(req('/one'));
    const second = await throughRelay(req('/two'));
    expect(first.reply).toMatch(/^HTTP\/1\.1 200/);
    expect(second.reply).toMatch(/^HTTP\/1\.1 200/);
    expect(first.exitCode).toBe(0);
    expect(origin.seen.map((s) => s.url)).toEqual(['/one', '/two']);
  });

  it('carries the proxy refusal back to the guest', async () => {
    const res = await throughRelay('CONNECT other.test:443 HTTP/1.1\r\n\r\n');
    expect(res.reply).toMatch(/^HTTP\/1\.1 403/);
    expect(res.reply).toContain('egress policy');
  });

  it('refuses ports and node paths it cannot express', () => {
    expect(() => egressRelayCommand(0)).toThrow(/not a TCP port/);
    expect(() => egressRelayCommand(1, '/opt/my node/bin/node')).toThrow(/space or quote/);
  });
});
