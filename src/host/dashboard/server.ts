import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ControllerApi, DashboardLogin, Origin } from '../api/controller.js';
import type { Role } from '../api/roles.js';
import { type Clock, recordSafely, type SecurityRecorder, systemClock } from '../control/events.js';
import { listenOn, normalizeIp } from '../control/net.js';
import type { ControlStore } from '../control/store.js';
import { CoworkError } from '../errors.js';
import { type Caller, handleCall, sessionInfo } from './api-routes.js';
import { type AssetPath, isAssetPath, PACKAGE_ROOT, readAsset } from './assets.js';
import { DashboardEventStream } from './event-stream.js';
import { RequestGuard } from './guards.js';
import {
  applySecurityHeaders,
  LOGIN_HINT,
  methodNotAllowed,
  sendError,
  sendJson,
  sendPage,
  sessionCookieName,
} from './http.js';
import { loginBinding } from './login.js';
import { LoginFailures } from './login-failures.js';
import { DashboardAuth, type DashboardAuthOptions } from './sessions.js';

export interface DashboardServerOptions {
  api: ControllerApi;
  /** The device store (the control API's, when it runs); called on first need, not at start. */
  devices: () => ControlStore;
  /** 0 (default): a free port. Always on 127.0.0.1. */
  port?: number;
  clock?: Clock;
  /** The Timeline: refused logins and foreign origins are recorded there. */
  recorder?: SecurityRecorder;
  /** Where the pages are looked up (default: this package). */
  packageRoot?: string;
  auth?: DashboardAuthOptions;
  heartbeatMs?: number;
  /** How often idle sessions and devices revoked by another process are looked for. */
  sweepMs?: number;
  maxStreamsPerSession?: number;
  /** API requests one session may make per minute (default 600, as on the control API). */
  requestsPerMinute?: number;
  /** Open TCP connections at once (default 512: 64 sessions × 4 streams, and room for calls); more are dropped. */
  maxConnections?: number;
}

const HOST = '127.0.0.1';

/**
 * The web dashboard's server, run by the controller on 127.0.0.1 only. It serves three fixed
 * files, a login that turns a one-time token into a session cookie, the contract's methods as
 * `POST /api/call/<method>` and live events as `GET /api/events`. It decides nothing itself:
 * every call goes through the contract's remote adapter to the ControllerApi.
 *
 * Every request must name this server in `Host` (127.0.0.1 or localhost, with its port), so a
 * page on another name that resolves to 127.0.0.1 (DNS rebinding) gets nothing. Every write
 * needs the session cookie (SameSite=Strict), an `Origin` equal to this server's own, and the
 * session's CSRF token in a header. GET never changes anything (except /login, which spends its
 * token).
 */
export class DashboardServer {
  readonly auth: DashboardAuth;
  private readonly http: Server;
  private readonly opts: DashboardServerOptions;
  private readonly clock: Clock;
  private readonly failures: LoginFailures;
  private readonly streams = new Map<string, Set<DashboardEventStream>>();
  private readonly guard: RequestGuard;
  private store: ControlStore | undefined;
  private unsubscribeRevoke: (() => void) | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private port = 0;

  constructor(opts: DashboardServerOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
    this.auth = new DashboardAuth({ clock: this.clock, ...opts.auth });
    this.failures = new LoginFailures(this.clock);
    this.guard = new RequestGuard({
      auth: this.auth,
      devices: () => this.devices(),
      clock: this.clock,
      recorder: opts.recorder,
      requestsPerMinute: opts.requestsPerMinute ?? 600,
      cookieName: () => sessionCookieName(this.port),
    });
    this.auth.onEnd((s) => {
      for (const stream of this.streams.get(s.id) ?? []) stream.end();
      this.streams.delete(s.id);
      this.guard.forget(s.id);
    });
    this.http = createServer({ headersTimeout: 10_000, requestTimeout: 60_000 }, (req, res) => {
      this.handle(req, res).catch((err) => {
        if (!res.headersSent) sendError(res, CoworkError.from(err));
        else res.destroy();
      });
    });
    this.http.maxConnections = opts.maxConnections ?? 512;
  }

  async start(): Promise<{ url: string; port: number }> {
    const port = this.opts.port ?? 0;
    this.port = await listenOn(
      this.http,
      port,
      HOST,
      `the dashboard cannot listen on ${HOST}:${port} (set [dashboard] port = 0 for a free port, or enabled = false)`,
    );
    this.sweepTimer = setInterval(() => this.sweep(), this.opts.sweepMs ?? 1000);
    this.sweepTimer.unref();
    return { url: this.url, port: this.port };
  }

  /** The dashboard's address, with no token in it. */
  get url(): string {
    return `${this.origin}/`;
  }

  private get origin(): string {
    return `http://${HOST}:${this.port}`;
  }

  /** A one-time login URL for the caller (see login.ts for who gets which device and role). */
  login(req: { role?: Role }, origin: Origin): DashboardLogin {
    const binding = loginBinding(origin, req.role, this.devices());
    const { token, expiresAt } = this.auth.issueToken(binding);
    return { url: `${this.origin}/login?token=${token}`, expiresAt };
  }

  async close(): Promise<void> {
    clearInterval(this.sweepTimer);
    this.unsubscribeRevoke?.();
    this.auth.close();
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
  }

  /** The store, opened on first need; a revoke through it ends that device's sessions at once. */
  private devices(): ControlStore {
    if (!this.store) {
      this.store = this.opts.devices();
      this.unsubscribeRevoke = this.store.onRevoke((id) => this.auth.endDevice(id));
    }
    return this.store;
  }

  private sweep(): void {
    this.auth.sweep();
    if (!this.store) return;
    // Revoked by another process (`cowork-vm devices revoke`): its store's event never reaches us.
    for (const id of this.auth.deviceIds()) if (!this.store.isActive(id)) this.auth.endDevice(id);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    applySecurityHeaders(res);
    if (!this.hostAllowed(req.headers.host)) {
      sendPage(res, 421, 'Wrong address', [`This dashboard answers only at ${this.url}.`]);
      return;
    }
    let path: string;
    let query: URLSearchParams;
    try {
      const u = new URL(req.url ?? '/', this.origin);
      path = u.pathname;
      query = u.searchParams;
    } catch {
      sendPage(res, 400, 'Bad request', ['The address could not be read.']);
      return;
    }
    if (path === '/login') return this.redeemLogin(req, res, query);
    if (path === '/api' || path.startsWith('/api/')) return this.api(req, res, path);
    if (isAssetPath(path)) return this.asset(req, res, path);
    sendPage(res, 404, 'Not found', [`Nothing here; the dashboard is at ${this.url}.`]);
  }

  /** DNS rebinding: a browser sends the name it resolved, which must be ours. */
  private hostAllowed(host: string | undefined): boolean {
    if (!host) return false;
    const h = host.toLowerCase();
    return h === `${HOST}:${this.port}` || h === `localhost:${this.port}`;
  }

  private redeemLogin(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): void {
    if (req.method !== 'GET') {
      methodNotAllowed(res, ['GET'], false);
      return;
    }
    const ip = normalizeIp(req.socket.remoteAddress);
    const redeemed = this.auth.redeem(query.get('token') ?? '');
    // A valid token is never refused for the failures of others: it is 256 random bits, and
    // refusing it could only help someone lock the owner out.
    if (redeemed && this.devices().isActive(redeemed.session.deviceId)) {
      this.failures.clear(ip);
      res.writeHead(303, {
        'Set-Cookie': `${sessionCookieName(this.port)}=${redeemed.cookie}; HttpOnly; SameSite=Strict; Path=/`,
        Location: '/',
        'Content-Length': 0,
      });
      res.end();
      return;
    }
    if (redeemed) this.auth.endDevice(redeemed.session.deviceId);
    const limited = this.failures.fail(ip, this.opts.recorder);
    recordSafely(this.opts.recorder, {
      type: 'control.auth_failed',
      ip,
      reason: 'dashboard login with an unknown, used or expired token',
    });
    const lines = ['This login link is not valid: it is unknown, was already used, or expired.', LOGIN_HINT];
    if (limited) sendPage(res, 429, 'Too many failed logins', lines, { 'Retry-After': String(limited) });
    else sendPage(res, 401, 'Login link not valid', lines);
  }

  private async asset(req: IncomingMessage, res: ServerResponse, path: AssetPath): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      methodNotAllowed(res, ['GET', 'HEAD'], false);
      return;
    }
    if (!this.guard.authenticate(req)) {
      sendPage(res, 401, 'Not logged in', ['This browser has no dashboard session.', LOGIN_HINT]);
      return;
    }
    const { body, type } = await readAsset(this.opts.packageRoot ?? PACKAGE_ROOT, path);
    res.writeHead(200, { 'Content-Type': type, 'Content-Length': body.length });
    res.end(body);
  }

  private async api(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const method = req.method ?? '';
    if (path === '/api/session') {
      if (method !== 'GET') {
        methodNotAllowed(res, ['GET'], true);
        return;
      }
      const caller = this.guard.read(req, res);
      if (caller) sendJson(res, 200, sessionInfo(caller));
      return;
    }
    if (path === '/api/events') {
      if (method !== 'GET') {
        methodNotAllowed(res, ['GET'], true);
        return;
      }
      const caller = this.guard.read(req, res);
      if (caller) this.openStream(req, res, caller);
      return;
    }
    if (path.startsWith('/api/call/')) {
      if (method !== 'POST') {
        methodNotAllowed(res, ['POST'], true);
        return;
      }
      const caller = this.guard.write(req, res);
      if (!caller) return;
      let name: string;
      try {
        name = decodeURIComponent(path.slice('/api/call/'.length));
      } catch {
        sendError(res, new CoworkError('invalidArgument', 'the method name is not valid URL encoding'));
        return;
      }
      await handleCall(req, res, name, caller, { api: this.opts.api, store: this.devices() });
      return;
    }
    sendError(res, new CoworkError('notFound', 'no such API: /api/session, /api/events, /api/call/<method>'));
  }

  private openStream(req: IncomingMessage, res: ServerResponse, caller: Caller): void {
    const id = caller.session.id;
    const mine = this.streams.get(id) ?? new Set<DashboardEventStream>();
    const max = this.opts.maxStreamsPerSession ?? 4;
    if (mine.size >= max) {
      sendError(
        res,
        new CoworkError('limitExceeded', `at most ${max} event streams per session; close a tab`),
      );
      return;
    }
    this.streams.set(id, mine);
    const stream: DashboardEventStream = new DashboardEventStream(
      res,
      this.opts.api,
      {
        heartbeatMs: this.opts.heartbeatMs ?? 15_000,
        maxBufferedBytes: 4 * 1024 * 1024,
        lastEventId: lastEventId(req),
      },
      () => mine.delete(stream),
    );
    mine.add(stream);
  }
}

/** `Last-Event-ID` as a timeline id, or undefined when absent or not one. */
function lastEventId(req: IncomingMessage): number | undefined {
  const v = req.headers['last-event-id'];
  return typeof v === 'string' && /^\d{1,15}$/.test(v) ? Number(v) : undefined;
}
