import { isIP } from 'node:net';

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
