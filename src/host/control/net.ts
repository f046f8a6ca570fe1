import type { Server } from 'node:http';
import { type AddressInfo, isIP } from 'node:net';
import { CoworkError } from '../errors.js';

/** Listens, or rejects with `refusal` (what could not listen, and what to do) over the system error. */
export async function listenOn(server: Server, port: number, host: string, refusal: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(CoworkError.from(err, 'unavailable', refusal));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/** True for addresses that only this machine can reach: 127/8, ::1, 'localhost'. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

/** '::ffff:127.0.0.1' → '127.0.0.1', so one client is one lockout key whatever the socket family. */
export function normalizeIp(addr: string | undefined): string {
  if (!addr) return 'unknown';
  return addr.startsWith('::ffff:') && isIP(addr.slice(7)) === 4 ? addr.slice(7) : addr;
}

/**
 * Browser clients send an Origin header; non-browser clients (the CLI, the menubar, tests)
 * usually do not. No Origin: allowed (a non-browser client still has to authenticate).
 * An Origin must be listed in `allowed` exactly, or be the server's own loopback origin.
 */
export function originAllowed(
  origin: string | undefined,
  allowed: readonly string[],
  self: { port: number; tls: boolean },
): boolean {
  if (origin === undefined) return true;
  if (allowed.includes(origin)) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  const scheme = self.tls ? 'https:' : 'http:';
  const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
  return (
    url.protocol === scheme && isLoopbackHost(url.hostname) && port === self.port && url.origin === origin
  );
}

/**
 * The key one client's failures and connections are counted under. IPv4 addresses count one by
 * one; IPv6 addresses by their /64, because anyone holding a /64 (the smallest prefix routed to
 * a home or a VM) can send from 2^64 addresses of it.
 */
export function addressKey(ip: string): string {
  if (isIP(ip) !== 6 || ip === '::1') return ip;
  const [head = '', tail = ''] = ip.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  // An embedded IPv4 tail (::ffff:1.2.3.4 and the like) is two groups; it is never in the first four.
  const rightGroups = right.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0);
  const groups = ip.includes('::')
    ? [...left, ...Array<string>(Math.max(0, 8 - left.length - rightGroups)).fill('0'), ...right]
    : left;
  const prefix = groups.slice(0, 4).map((g) => (Number.parseInt(g, 16) || 0).toString(16));
  return `${prefix.join(':')}::/64`;
}

/**
 * A listener off loopback without TLS would send every device key in clear (the pairing reply
 * carries it) and let anyone on the path watch the sessions. Refused before anything is bound.
 */
export function listenRefusal(
  host: string,
  opts: { allowRemote?: boolean; tls?: boolean },
): string | undefined {
  if (isLoopbackHost(host)) return undefined;
  if (!opts.allowRemote)
    return `refusing to listen on ${host}: it is reachable from other machines. Use 127.0.0.1, or set control.allowRemote = true (or pass --allow-remote) together with a TLS certificate if you mean it.`;
  if (!opts.tls)
    return (
      `refusing to listen on ${host} without TLS: the pairing reply carries each new device's key, and it would cross the network in clear. ` +
      'Set a certificate in the user config (~/.config/cowork-vm/config.toml or --config FILE): ' +
      '[control] tls = { cert = "/path/cert.pem", key = "/path/key.pem" } (PEM files), or listen on 127.0.0.1.'
    );
  return undefined;
}
