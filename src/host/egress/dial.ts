import http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { CoworkError } from '../errors.js';
import type { Dialer } from './runtime.js';

/**
 * Dials a checked address and destroys the socket with a `timeout` CoworkError when the TCP
 * handshake has not completed within `timeoutMs` (a black-holed address otherwise waits for
 * the kernel's SYN retries, about two minutes).
 */
export function dialWithTimeout(
  dial: Dialer,
  target: { address: string; family: 4 | 6; port: number },
  timeoutMs: number,
): net.Socket {
  const socket = dial(target);
  if (!socket.connecting) return socket;
  const timer = setTimeout(() => {
    socket.destroy(
      new CoworkError(
        'timeout',
        `${target.address} port ${target.port} did not accept the connection within ${timeoutMs} ms`,
      ),
    );
  }, timeoutMs);
  const clear = () => clearTimeout(timer);
  socket.once('connect', clear);
  socket.once('close', clear);
  return socket;
}

export const isConnectTimeout = (err: unknown): boolean => CoworkError.is(err, 'timeout');

/** The status a failed upstream connection is answered with: 504 for a timeout, else 502. */
export function upstreamFailureStatus(err: unknown): 502 | 504 {
  return isConnectTimeout(err) ? 504 : 502;
}

/**
 * A complete plain-text response written straight to a socket that the HTTP server no longer
 * owns (a CONNECT or upgrade socket, or a connection refused before parsing), then closed.
 */
export function endWith(socket: Duplex, status: number, body: string): void {
  if (socket.destroyed || socket.writableEnded) {
    socket.destroy();
    return;
  }
  const text = http.STATUS_CODES[status] ?? 'Error';
  const length = Buffer.byteLength(body);
  // Read and drop what the client still sends, and close fully once the answer is out, as Node
  // does for `Connection: close`: a client that never closes its side cannot hold the socket.
  socket.resume();
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${length}\r\n` +
      `X-Cowork-Egress: ${status === 403 ? 'denied' : 'error'}\r\nConnection: close\r\n\r\n${body}`,
  );
}
