import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import type { ControllerApi } from '../api/controller.js';
import { CoworkError } from '../errors.js';
import { AdmissionPool, connectionId } from './admission.js';
import { AUTH_TIMEOUT_MS, NonceRegistry } from './auth.js';
import { type Clock, recordSafely, type SecurityRecorder, systemClock } from './events.js';
import { addressKey, isLoopbackHost, listenOn, listenRefusal, normalizeIp, originAllowed } from './net.js';
import { CLOSE_CODES } from './protocol.js';
import { ControlSession, type SessionDeps } from './session.js';
import type { ControlStore } from './store.js';

export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;
/** Defaults of the limits that apply before a connection has authenticated. */
export const UNAUTHENTICATED_LIMITS = {
  perAddress: 8,
  total: 32,
  /** Bytes a connection may send after the upgrade and before it authenticates (pair + auth need < 1 KiB). */
  maxBytes: 16 * 1024,
  /** Largest single frame before authentication. */
  maxFrameBytes: 4 * 1024,
} as const;
export const DEFAULT_REQUESTS_PER_MINUTE = 600;

export interface ControlServerOptions {
  api: ControllerApi;
  store: ControlStore;
  listen: { host: string; port: number };
  /** Required to bind anything but loopback, together with `tls`; even then a warning is logged. */
  allowRemote?: boolean;
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Largest frame an authenticated session may send. */
  maxFrameBytes?: number;
  /** Exact origins (e.g. 'https://dash.example') browsers may connect from, besides the server's own loopback origin. */
  allowedOrigins?: string[];
  /** Stable id of this controller, bound into every HMAC answer; default: the store's serverId(). */
  serverId?: string;
  clock?: Clock;
  recorder?: SecurityRecorder;
  /** From the TCP accept to `auth-ok` (default 10 s); also how long a challenge is valid. */
  handshakeTimeoutMs?: number;
  /** Older name of handshakeTimeoutMs. */
  authTimeoutMs?: number;
  maxProtocolErrors?: number;
  /** Authenticated sessions allowed at once (default 64); more are closed with 1013 at auth. */
  maxConnections?: number;
  /** Unauthenticated connections per address (IPv6: per /64) and in total; the oldest is evicted when full. */
  maxUnauthenticatedPerAddress?: number;
  maxUnauthenticated?: number;
  /** Bytes a connection may send before it authenticates; beyond them it is closed (1009). */
  maxUnauthenticatedBytes?: number;
  /** Requests per minute one authenticated session may make (default 600). */
  requestsPerMinute?: number;
  /** How often to look for devices revoked by another process (e.g. `cowork-vm devices revoke`). */
  revocationSweepMs?: number;
  logger?: { warn(message: string): void };
}

/**
 * The WebSocket control API. Off unless constructed and started by the controller.
 * Transport only: every method dispatches to the ControllerApi in the `gateway` context with
 * origin `device:<id>`; decisions stay with the controller.
 */
export class ControlServer {
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly sessions = new Set<ControlSession>();
  private readonly pending: AdmissionPool;
  private readonly deps: SessionDeps;
  private readonly opts: ControlServerOptions;
  private sweepTimer: NodeJS.Timeout | undefined;
  private unsubscribeRevoke: (() => void) | undefined;
  private port = 0;

  constructor(opts: ControlServerOptions) {
    this.opts = opts;
    const refusal = listenRefusal(opts.listen.host, { allowRemote: opts.allowRemote, tls: !!opts.tls });
    if (refusal) throw new CoworkError('denied', refusal);
    if (!isLoopbackHost(opts.listen.host)) {
      (opts.logger ?? console).warn(
        `cowork-vm control API listens on ${opts.listen.host}, reachable from other machines; only paired devices can authenticate.`,
      );
    }
    const maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    const handshakeTimeoutMs = opts.handshakeTimeoutMs ?? opts.authTimeoutMs ?? AUTH_TIMEOUT_MS;
    this.pending = new AdmissionPool({
      perAddress: opts.maxUnauthenticatedPerAddress ?? UNAUTHENTICATED_LIMITS.perAddress,
      total: opts.maxUnauthenticated ?? UNAUTHENTICATED_LIMITS.total,
      handshakeTimeoutMs,
    });
    this.deps = {
      api: opts.api,
      store: opts.store,
      nonces: new NonceRegistry<ControlSession>(),
      clock: opts.clock ?? systemClock,
      recorder: opts.recorder,
      serverId: opts.serverId ?? opts.store.serverId(),
      authTimeoutMs: handshakeTimeoutMs,
      maxFrameBytes,
      maxUnauthenticatedFrameBytes: Math.min(UNAUTHENTICATED_LIMITS.maxFrameBytes, maxFrameBytes),
      maxProtocolErrors: opts.maxProtocolErrors ?? 5,
      maxBufferedBytes: 16 * 1024 * 1024,
      requestsPerMinute: opts.requestsPerMinute ?? DEFAULT_REQUESTS_PER_MINUTE,
      admitAuthenticated: (s) => this.admitAuthenticated(s),
    };
    const onPlainHttp = (_req: IncomingMessage, res: import('node:http').ServerResponse) => {
      res.writeHead(426, { 'content-type': 'text/plain', connection: 'close' });
      res.end('cowork-vm control API: connect with a WebSocket client\n');
    };
    // Slow clients are cut by the admission pool; these make Node's own checks agree with it.
    const httpOpts = {
      headersTimeout: handshakeTimeoutMs,
      requestTimeout: handshakeTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, handshakeTimeoutMs),
    };
    this.http = opts.tls
      ? createHttpsServer(
          { ...httpOpts, cert: opts.tls.cert, key: opts.tls.key, handshakeTimeout: handshakeTimeoutMs },
          onPlainHttp,
        )
      : createHttpServer(httpOpts, onPlainHttp);
    // Every TCP connection is unauthenticated until proven otherwise, from the accept on.
    this.http.on('connection', (socket: Socket) =>
      this.pending.admit(socket, addressKey(normalizeIp(socket.remoteAddress))),
    );
    // Frames between maxFrameBytes and this hard cap get a typed error; beyond it ws closes with 1009.
    // No permessage-deflate: a small compressed frame must not inflate into a huge one.
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: maxFrameBytes * 4,
      perMessageDeflate: false,
    });
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.onUpgrade(req, socket as Socket, head),
    );
  }

  async start(): Promise<{ host: string; port: number; url: string }> {
    const { host: listenHost, port: listenPort } = this.opts.listen;
    this.port = await listenOn(
      this.http,
      listenPort,
      listenHost,
      `control API cannot listen on ${listenHost}:${listenPort}`,
    );
    this.unsubscribeRevoke = this.opts.store.onRevoke((id) => this.closeDevice(id));
    this.sweepTimer = setInterval(() => this.sweepRevoked(), this.opts.revocationSweepMs ?? 1000);
    this.sweepTimer.unref();
    const host = this.opts.listen.host.includes(':') ? `[${this.opts.listen.host}]` : this.opts.listen.host;
    return {
      host: this.opts.listen.host,
      port: this.port,
      url: `${this.opts.tls ? 'wss' : 'ws'}://${host}:${this.port}`,
    };
  }

  /** Open WebSocket sessions, authenticated or not. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Connections (TCP, TLS, HTTP or WebSocket) that have not authenticated yet. */
  get unauthenticatedCount(): number {
    return this.pending.size;
  }

  /** Closes every open session of a device (code 4010). */
  closeDevice(deviceId: string): number {
    let n = 0;
    for (const s of this.sessions) {
      if (s.deviceId === deviceId) {
        s.close(CLOSE_CODES.deviceRevoked, 'device revoked');
        n++;
      }
    }
    return n;
  }

  private sweepRevoked(): void {
    // Sessions are checked directly: cheap, and it does not depend on clocks agreeing between processes.
    for (const s of this.sessions) {
      if (s.deviceId && !this.opts.store.isActive(s.deviceId))
        s.close(CLOSE_CODES.deviceRevoked, 'device revoked');
    }
  }

  /** Refuses a foreign Origin with a plain 403 before any WebSocket handshake happens. */
  private onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const ip = normalizeIp(req.socket.remoteAddress);
    const origin = req.headers.origin;
    if (!originAllowed(origin, this.opts.allowedOrigins ?? [], { port: this.port, tls: !!this.opts.tls })) {
      recordSafely(this.deps.recorder, {
        type: 'control.origin_refused',
        ip,
        origin: String(origin).slice(0, 200),
      });
      refuseUpgrade(socket, 403, 'Forbidden', 'origin not allowed\n');
      return;
    }
    const id = connectionId(socket);
    if (!this.pending.has(id)) {
      // Timed out or evicted while the request was arriving.
      socket.destroy();
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, req, id, head.length));
  }

  private onConnection(ws: WebSocket, req: IncomingMessage, connId: string, headBytes: number): void {
    const ip = normalizeIp(req.socket.remoteAddress);
    const session = new ControlSession(ws, ip, this.deps);
    this.sessions.add(session);
    ws.on('close', () => {
      this.sessions.delete(session);
      this.pending.release(connId);
    });
    this.limitUnauthenticatedBytes(session, ws, req.socket, headBytes, connId);
    this.pending.attach(connId, (why) => {
      session.endHandshake(why);
      // A client that never answers the close frame must not hold the socket for ws's 30 s.
      setTimeout(() => ws.terminate(), 1000).unref();
    });
    session.onAuthenticated(() => this.pending.release(connId));
  }

  /**
   * ws buffers a whole frame before it looks at it, up to maxPayload; before authentication a
   * client may send only a few KiB in all, so half-sent huge frames cannot pile up in memory.
   */
  private limitUnauthenticatedBytes(
    session: ControlSession,
    ws: WebSocket,
    socket: Socket,
    head: number,
    connId: string,
  ): void {
    const limit = this.opts.maxUnauthenticatedBytes ?? UNAUTHENTICATED_LIMITS.maxBytes;
    let received = head;
    const onData = (chunk: Buffer) => {
      if (session.authenticated) {
        socket.off('data', onData);
        return;
      }
      received += chunk.length;
      if (received <= limit) return;
      socket.off('data', onData);
      recordSafely(this.deps.recorder, {
        type: 'control.protocol_error',
        ip: session.ip,
        reason: `more than ${limit} bytes sent before authenticating`,
      });
      session.close(1009, `more than ${limit} bytes before authentication`);
      // Read nothing more; the socket no longer counts as a pending handshake.
      socket.pause();
      this.pending.release(connId);
      setTimeout(() => ws.terminate(), 1000).unref();
    };
    socket.on('data', onData);
  }

  private admitAuthenticated(session: ControlSession): boolean {
    let n = 0;
    for (const s of this.sessions) if (s !== session && s.authenticated) n++;
    return n < (this.opts.maxConnections ?? 64);
  }

  async close(): Promise<void> {
    clearInterval(this.sweepTimer);
    this.unsubscribeRevoke?.();
    for (const s of this.sessions) s.close(CLOSE_CODES.shuttingDown, 'server shutting down');
    for (const ws of this.wss.clients) ws.terminate();
    this.pending.close();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections?.();
    });
  }
}

function refuseUpgrade(socket: Socket, status: number, text: string, body: string): void {
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  setTimeout(() => socket.destroy(), 1000).unref();
}
