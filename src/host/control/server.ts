import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';
import { CoworkError } from '../errors.js';
import type { ControllerApi } from './api.js';
import { AUTH_TIMEOUT_MS, NonceRegistry } from './auth.js';
import { type Clock, recordSafely, type SecurityRecorder, systemClock } from './events.js';
import { isLoopbackHost, normalizeIp, originAllowed } from './net.js';
import { CLOSE_CODES } from './protocol.js';
import { ControlSession, type SessionDeps } from './session.js';
import type { ControlStore } from './store.js';

export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;

export interface ControlServerOptions {
  api: ControllerApi;
  store: ControlStore;
  listen: { host: string; port: number };
  /** Required to bind anything but loopback; even then a warning is logged. */
  allowRemote?: boolean;
  tls?: { cert: string | Buffer; key: string | Buffer };
  maxFrameBytes?: number;
  /** Exact origins (e.g. 'https://dash.example') browsers may connect from, besides the server's own loopback origin. */
  allowedOrigins?: string[];
  /** Stable id of this controller, bound into every HMAC answer; default: the store's serverId(). */
  serverId?: string;
  clock?: Clock;
  recorder?: SecurityRecorder;
  authTimeoutMs?: number;
  maxProtocolErrors?: number;
  /** Open connections allowed at once, authenticated or not (default 64); more are closed with 1013. */
  maxConnections?: number;
  /** How often to look for devices revoked by another process (e.g. `cowork-vm devices revoke`). */
  revocationSweepMs?: number;
  logger?: { warn(message: string): void };
}

/**
 * The WebSocket control API (issue 6). Off unless constructed and started by the controller.
 * Transport only: every method dispatches to the ControllerApi in the `gateway` context with
 * origin `device:<id>`; decisions stay with the controller.
 */
export class ControlServer {
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly sessions = new Set<ControlSession>();
  private readonly deps: SessionDeps;
  private readonly opts: ControlServerOptions;
  private sweepTimer: NodeJS.Timeout | undefined;
  private unsubscribeRevoke: (() => void) | undefined;
  private port = 0;

  constructor(opts: ControlServerOptions) {
    this.opts = opts;
    if (!isLoopbackHost(opts.listen.host)) {
      if (!opts.allowRemote) {
        throw new CoworkError(
          'denied',
          `refusing to listen on ${opts.listen.host}: it is reachable from other machines. Use 127.0.0.1, or pass --allow-remote (with TLS) if you mean it.`,
        );
      }
      (opts.logger ?? console).warn(
        `cowork-vm control API listens on ${opts.listen.host}, reachable from other machines${opts.tls ? '' : ' WITHOUT TLS'}; only paired devices can authenticate.`,
      );
    }
    const maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.deps = {
      api: opts.api,
      store: opts.store,
      nonces: new NonceRegistry<ControlSession>(),
      clock: opts.clock ?? systemClock,
      recorder: opts.recorder,
      serverId: opts.serverId ?? opts.store.serverId(),
      authTimeoutMs: opts.authTimeoutMs ?? AUTH_TIMEOUT_MS,
      maxFrameBytes,
      maxProtocolErrors: opts.maxProtocolErrors ?? 5,
      maxBufferedBytes: 16 * 1024 * 1024,
    };
    const onPlainHttp = (_req: IncomingMessage, res: import('node:http').ServerResponse) => {
      res.writeHead(426, { 'content-type': 'text/plain', connection: 'close' });
      res.end('cowork-vm control API: connect with a WebSocket client\n');
    };
    this.http = opts.tls
      ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, onPlainHttp)
      : createHttpServer(onPlainHttp);
    // Frames between maxFrameBytes and this hard cap get a typed error; beyond it ws closes with 1009.
    // No permessage-deflate: a small compressed frame must not inflate into a huge one.
    this.wss = new WebSocketServer({
      server: this.http,
      maxPayload: maxFrameBytes * 4,
      perMessageDeflate: false,
    });
    this.wss.on('connection', (ws, req) => this.onConnection(ws, req));
  }

  async start(): Promise<{ host: string; port: number; url: string }> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) =>
        reject(
          CoworkError.from(
            err,
            'unavailable',
            `control API cannot listen on ${this.opts.listen.host}:${this.opts.listen.port}`,
          ),
        );
      this.http.once('error', onError);
      this.http.listen(this.opts.listen.port, this.opts.listen.host, () => {
        this.http.off('error', onError);
        resolve();
      });
    });
    this.port = (this.http.address() as AddressInfo).port;
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

  get sessionCount(): number {
    return this.sessions.size;
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

  private onConnection(ws: WebSocket, req: IncomingMessage): void {
    const ip = normalizeIp(req.socket.remoteAddress);
    const origin = req.headers.origin;
    if (!originAllowed(origin, this.opts.allowedOrigins ?? [], { port: this.port, tls: !!this.opts.tls })) {
      recordSafely(this.deps.recorder, {
        type: 'control.origin_refused',
        ip,
        origin: String(origin).slice(0, 200),
      });
      ws.close(CLOSE_CODES.forbiddenOrigin, 'origin not allowed');
      return;
    }
    if (this.sessions.size >= (this.opts.maxConnections ?? 64)) {
      ws.close(CLOSE_CODES.tryAgainLater, 'too many open connections; try again later');
      return;
    }
    if (this.opts.store.lockouts.lockedUntil(`auth:ip:${ip}`) !== undefined) {
      recordSafely(this.deps.recorder, {
        type: 'control.refused_locked',
        scope: 'auth',
        key: `auth:ip:${ip}`,
      });
      ws.close(CLOSE_CODES.lockedOut, 'too many failed authentications from this address; try again later');
      return;
    }
    const session = new ControlSession(ws, ip, this.deps);
    this.sessions.add(session);
    ws.on('close', () => this.sessions.delete(session));
  }

  async close(): Promise<void> {
    clearInterval(this.sweepTimer);
    this.unsubscribeRevoke?.();
    for (const s of this.sessions) s.close(CLOSE_CODES.shuttingDown, 'server shutting down');
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections?.();
    });
  }
}
