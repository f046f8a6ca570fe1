import { connect as netConnect, type Socket } from 'node:net';
import WebSocket from 'ws';
import { computeAuthHmac } from '../../src/host/control/auth.js';

/**
 * Attack-side primitives for the control API tests: raw sockets and raw WebSockets that can
 * choose their loopback source address (127.0.0.2, 127.0.0.3 …), send exactly the bytes a test
 * wants and never hide what the server answered.
 */

export interface RawUpgradeResult {
  status: number;
  /** Everything the server sent before closing or before the header block ended. */
  head: string;
}

/** Sends a WebSocket upgrade request by hand and reads the HTTP status line of the answer. */
export function rawUpgrade(
  port: number,
  opts: { origin?: string; localAddress?: string } = {},
): Promise<RawUpgradeResult> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({
      host: '127.0.0.1',
      port,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    });
    let buf = '';
    const finish = () => {
      socket.destroy();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(buf);
      if (!m) reject(new Error(`no HTTP status line in ${JSON.stringify(buf.slice(0, 200))}`));
      else resolve({ status: Number(m[1]), head: buf.split('\r\n\r\n')[0] ?? buf });
    };
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('\r\n\r\n')) finish();
    });
    socket.on('end', finish);
    socket.on('error', reject);
    socket.write(
      [
        'GET / HTTP/1.1',
        `Host: 127.0.0.1:${port}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
        'Sec-WebSocket-Version: 13',
        ...(opts.origin !== undefined ? [`Origin: ${opts.origin}`] : []),
        '',
        '',
      ].join('\r\n'),
    );
  });
}

/**
 * An open TCP connection to the server that sends nothing at all. It reads (and drops) what
 * comes, so that it notices — 'close' — when the server hangs up.
 */
export function idleTcp(port: number, localAddress?: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: '127.0.0.1', port, ...(localAddress ? { localAddress } : {}) }, () =>
      resolve(s),
    );
    s.on('error', reject);
    s.resume();
  });
}

export interface RawFrame {
  type: string;
  [k: string]: unknown;
}

export interface RawClient {
  ws: WebSocket;
  challenge: { nonce: string; serverId: string };
  frames: RawFrame[];
  /** The next frame the server sends (or rejects when the connection closes first). */
  next(): Promise<RawFrame>;
  closed: Promise<{ code: number; reason: string }>;
  send(frame: unknown): void;
}

/** A WebSocket from a chosen loopback source address; resolves once the challenge arrived. */
export function rawClient(
  url: string,
  opts: { localAddress?: string; origin?: string; ca?: Buffer } = {},
): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
      ...(opts.origin ? { origin: opts.origin } : {}),
      ...(opts.ca ? { ca: opts.ca } : {}),
    });
    const frames: RawFrame[] = [];
    const waiters: { resolve: (f: RawFrame) => void; reject: (e: Error) => void }[] = [];
    let closeInfo: { code: number; reason: string } | undefined;
    const closed = new Promise<{ code: number; reason: string }>((r) =>
      ws.on('close', (code, reason) => {
        closeInfo = { code, reason: reason.toString() };
        for (const w of waiters.splice(0)) w.reject(new Error(`closed ${code} ${reason.toString()}`));
        r(closeInfo);
      }),
    );
    let read = 0;
    const client: RawClient = {
      ws,
      challenge: { nonce: '', serverId: '' },
      frames,
      next: () =>
        read < frames.length
          ? Promise.resolve(frames[read++]!)
          : closeInfo
            ? Promise.reject(new Error(`closed ${closeInfo.code} ${closeInfo.reason}`))
            : new Promise((res, rej) =>
                waiters.push({
                  resolve: (f) => {
                    read++;
                    res(f);
                  },
                  reject: rej,
                }),
              ),
      closed,
      send: (frame) => ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame)),
    };
    ws.on('message', (data) => {
      const f = JSON.parse(data.toString()) as RawFrame;
      if (f.type === 'challenge' && client.challenge.nonce === '') {
        client.challenge = { nonce: String(f.nonce), serverId: String(f.serverId) };
        resolve(client);
        return;
      }
      frames.push(f);
      waiters.shift()?.resolve(f);
    });
    ws.on('error', (err) => reject(err));
    closed.then((c) => reject(new Error(`closed before the challenge: ${c.code} ${c.reason}`)));
  });
}

/** The auth frame for `deviceId` with `key` (base64url), answering this client's challenge. */
export function authFrame(client: RawClient, deviceId: string, keyB64: string) {
  return {
    type: 'auth',
    deviceId,
    nonce: client.challenge.nonce,
    hmac: computeAuthHmac(
      Buffer.from(keyB64, 'base64url'),
      client.challenge.nonce,
      client.challenge.serverId,
    ),
  };
}

/** Loopback source addresses 127.0.0.2 … for tests that rotate addresses (never a non-loopback one). */
export function loopbackAddresses(n: number, from = 2): string[] {
  return Array.from({ length: n }, (_, i) => {
    const k = from + i;
    return `127.0.${Math.floor(k / 250)}.${(k % 250) + (k >= 250 ? 1 : 0)}`;
  });
}
