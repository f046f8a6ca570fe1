import type { WebSocket } from 'ws';
import type { ControllerApi } from '../api/controller.js';
import { CoworkError } from '../errors.js';
import { AUTH_LOCKOUT, type NonceRegistry, verifyAuthHmac } from './auth.js';
import { type Clock, recordSafely, type SecurityRecorder } from './events.js';
import { type MethodContext, prepareCall, storeDevices } from './methods.js';
import { addressKey, isLoopbackHost } from './net.js';
import {
  type AuthFrame,
  CLOSE_CODES,
  clientFrameSchema,
  type ErrorBody,
  type PairFrame,
  type ReqFrame,
  type Role,
  type ServerFrame,
} from './protocol.js';
import type { ControlStore } from './store.js';

/** What a session needs from its server; one object so sessions stay testable and small. */
export interface SessionDeps {
  api: ControllerApi;
  store: ControlStore;
  nonces: NonceRegistry<ControlSession>;
  clock: Clock;
  recorder: SecurityRecorder | undefined;
  serverId: string;
  authTimeoutMs: number;
  maxFrameBytes: number;
  /** Largest frame accepted before authentication (pair and auth frames are well under 1 KiB). */
  maxUnauthenticatedFrameBytes: number;
  maxProtocolErrors: number;
  /** Outgoing bytes a slow subscriber may have queued before it is dropped. */
  maxBufferedBytes: number;
  /** Requests one authenticated session may make per minute (by `clock`). */
  requestsPerMinute: number;
  /** False when the server already holds its maximum of authenticated sessions. */
  admitAuthenticated(session: ControlSession): boolean;
}

const DUMMY_KEY = Buffer.alloc(32);
/**
 * The one answer to a wrong credential, whichever part was wrong: an unknown id, a revoked
 * device and a wrong HMAC must look the same, or the error tells an attacker which ids exist.
 */
export const AUTH_FAILED_MESSAGE =
  'authentication failed: unknown or revoked device, wrong key, or a late or reused answer; reconnect, and pair again if this device was removed';
const AUTH_LOCKED_MESSAGE =
  'authentication failed: too many failed attempts from this address; failed answers are refused for 5 minutes';

/**
 * One WebSocket connection: challenged → (paired) → authenticated → closed. Every frame is
 * validated; nothing but `auth` and `pair` is accepted before authentication, and every
 * request re-reads the device from the store so a revoke or a role change applies at once.
 */
export class ControlSession {
  deviceId: string | undefined;
  private role: Role | undefined;
  private nonce: string;
  private authAnswered = false;
  private protocolErrors = 0;
  private closed = false;
  private authenticatedListener: (() => void) | undefined;
  private window = { start: 0, count: 0, warned: false };
  private unsubscribeTimeline: (() => void) | undefined;
  private readonly abort = new AbortController();

  constructor(
    private readonly ws: WebSocket,
    readonly ip: string,
    private readonly deps: SessionDeps,
  ) {
    this.nonce = deps.nonces.issue(this, deps.clock.now());
    this.send({
      type: 'challenge',
      version: 1,
      nonce: this.nonce,
      serverId: deps.serverId,
      expiresInMs: deps.authTimeoutMs,
    });
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    ws.on('close', () => this.dispose());
    ws.on('error', () => this.dispose());
  }

  get authenticated(): boolean {
    return this.deviceId !== undefined;
  }

  /** Called once, when the session authenticates (the server stops counting it as unauthenticated). */
  onAuthenticated(listener: () => void): void {
    this.authenticatedListener = listener;
  }

  /** The server's handshake limits ended this unauthenticated connection. */
  endHandshake(why: 'timeout' | 'evicted'): void {
    if (this.authenticated) return;
    if (why === 'timeout')
      this.fail(
        'timeout',
        'no authentication within the time limit; reconnect and answer the challenge',
        CLOSE_CODES.authFailed,
      );
    else
      this.fail(
        'unavailable',
        'too many unauthenticated connections: this one was the oldest and was closed; reconnect and authenticate at once',
        CLOSE_CODES.tryAgainLater,
      );
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.dispose();
    // Close reasons are limited to 123 bytes by RFC 6455.
    this.ws.close(code, Buffer.from(reason).subarray(0, 123).toString());
  }

  private dispose(): void {
    if (this.closed) return;
    this.closed = true;
    this.deps.nonces.drop(this);
    this.unsubscribeTimeline?.();
    this.unsubscribeTimeline = undefined;
    this.abort.abort(new CoworkError('cancelled', 'the control connection closed'));
  }

  private send(frame: ServerFrame): void {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return;
    this.ws.send(JSON.stringify(frame));
  }

  private fail(code: ErrorBody['code'], message: string, closeCode: number): void {
    this.send({ type: 'error', error: { code, message } });
    this.close(closeCode, message);
  }

  /** A malformed or out-of-place frame: answer with a typed error; close after too many. */
  private protocolError(id: string | null, code: ErrorBody['code'], message: string): void {
    this.protocolErrors++;
    this.send({ type: 'res', id, ok: false, error: { code, message } });
    if (this.protocolErrors >= this.deps.maxProtocolErrors) {
      recordSafely(this.deps.recorder, {
        type: 'control.protocol_error',
        ip: this.ip,
        ...(this.deviceId ? { deviceId: this.deviceId } : {}),
        reason: `closed after ${this.protocolErrors} protocol errors; last: ${message}`,
      });
      this.close(CLOSE_CODES.protocolAbuse, 'too many protocol errors');
    }
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.closed) return;
    if (isBinary) {
      this.protocolError(null, 'invalidArgument', 'binary frames are not accepted; send JSON text');
      return;
    }
    const limit = this.authenticated ? this.deps.maxFrameBytes : this.deps.maxUnauthenticatedFrameBytes;
    if (data.length > limit) {
      this.protocolError(
        null,
        'limitExceeded',
        `frame of ${data.length} bytes exceeds the limit of ${limit} bytes`,
      );
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(data.toString('utf8'));
    } catch {
      this.protocolError(null, 'invalidArgument', 'frame is not valid JSON');
      return;
    }
    const parsed = clientFrameSchema.safeParse(json);
    if (!parsed.success) {
      const raw = (json ?? {}) as { id?: unknown; method?: unknown };
      const id = typeof raw.id === 'string' && raw.id.length > 0 ? raw.id.slice(0, 64) : null;
      const what = typeof raw.method === 'string' ? ` for '${raw.method.slice(0, 64)}'` : '';
      const expected = "expected {type:'req', id, method, params} (or auth/pair before authentication)";
      this.protocolError(id, 'invalidArgument', `malformed frame${what}: ${expected}`);
      return;
    }
    const frame = parsed.data;
    if (frame.type === 'auth') this.onAuth(frame);
    else if (frame.type === 'pair') this.onPair(frame);
    else void this.onRequest(frame);
  }

  /**
   * Failure accounting never stands between a known, unrevoked device and its correct answer:
   * the key is 256 random bits, so lockouts cannot protect it, while refusing it would let any
   * client on the same address lock the owner out. Failures count per address (IPv6: /64) —
   * all of them, whichever id they name, so the answer does not depend on whether the id exists —
   * and, for timeline alerts, per known device.
   */
  private onAuth(frame: AuthFrame): void {
    if (this.authenticated || this.authAnswered) {
      this.protocolError(null, 'invalidState', 'this connection already answered its challenge');
      return;
    }
    this.authAnswered = true;
    const { store, nonces, clock, serverId } = this.deps;
    const issuedAt = nonces.take(this, frame.nonce);
    const key = store.deviceKey(frame.deviceId);
    // Compute the HMAC even for unknown devices, so timing does not reveal which ids exist.
    const hmacOk = verifyAuthHmac(key ?? DUMMY_KEY, frame.nonce, serverId, frame.hmac) && key !== undefined;
    // One message for every failure, late or replayed answers included: the timeline keeps the reason.
    let reason: string | undefined;
    if (issuedAt === undefined) reason = 'nonce was not issued to this connection or was already used';
    else if (clock.now() - issuedAt > this.deps.authTimeoutMs)
      reason = 'answer came after the challenge expired';
    else if (!key) reason = 'unknown or revoked device';
    else if (!hmacOk) reason = 'wrong HMAC';
    if (reason) {
      this.authFailed(frame.deviceId, reason, key !== undefined);
      return;
    }
    const device = store.getDevice(frame.deviceId)!;
    if (!this.deps.admitAuthenticated(this)) {
      const msg = 'too many authenticated sessions are open on this server; close one and retry';
      this.fail('unavailable', msg, CLOSE_CODES.tryAgainLater);
      return;
    }
    store.lockouts.clear(`auth:device:${device.id}`);
    store.touchDevice(device.id);
    this.deviceId = device.id;
    this.role = device.role;
    this.authenticatedListener?.();
    recordSafely(this.deps.recorder, { type: 'control.auth_ok', ip: this.ip, deviceId: device.id });
    this.send({ type: 'auth-ok', deviceId: device.id, name: device.name, role: device.role });
  }

  private authFailed(deviceId: string, reason: string, knownDevice: boolean): void {
    const { store, recorder } = this.deps;
    recordSafely(recorder, { type: 'control.auth_failed', ip: this.ip, deviceId, reason });
    const ipKey = `auth:ip:${addressKey(this.ip)}`;
    const wasLocked = store.lockouts.lockedUntil(ipKey) !== undefined;
    if (wasLocked) recordSafely(recorder, { type: 'control.refused_locked', scope: 'auth', key: ipKey });
    const locked = wasLocked || store.lockouts.recordFailure('auth', ipKey, AUTH_LOCKOUT).locked;
    if (locked) this.fail('limitExceeded', AUTH_LOCKED_MESSAGE, CLOSE_CODES.lockedOut);
    else this.fail('denied', AUTH_FAILED_MESSAGE, CLOSE_CODES.authFailed);
    // After the answer went out, so the extra write does not make known ids slower to refuse.
    if (knownDevice) store.lockouts.recordFailure('auth', `auth:device:${deviceId}`, AUTH_LOCKOUT);
  }

  private onPair(frame: PairFrame): void {
    if (this.authenticated) {
      this.protocolError(null, 'invalidState', 'already authenticated; pairing is done before auth');
      return;
    }
    try {
      const { device, key } = this.deps.store.redeemPairingCode({
        code: frame.code,
        identity: `ip:${addressKey(this.ip)}`,
        // Every local user can send from any 127/8 address: such an "identity" would only let
        // one lock out all; the host-wide budgets in the store stop guessing from loopback.
        lockIdentity: !isLoopbackHost(this.ip),
        name: frame.name,
        channel: 'control',
      });
      this.send({
        type: 'paired',
        deviceId: device.id,
        deviceKey: key!.toString('base64url'),
        role: device.role,
        serverId: this.deps.serverId,
      });
    } catch (err) {
      const e = CoworkError.from(err);
      if (e.code === 'limitExceeded') this.fail(e.code, e.message, CLOSE_CODES.lockedOut);
      else this.send({ type: 'error', error: e.toJSON() });
    }
  }

  private async onRequest(frame: ReqFrame): Promise<void> {
    if (!this.deviceId || !this.role) {
      const msg = 'not authenticated: answer the challenge (or pair) before calling methods';
      this.protocolError(frame.id, 'denied', msg);
      return;
    }
    if (!this.withinRequestRate(frame.id)) return;
    const device = this.deps.store.getDevice(this.deviceId);
    if (!device || device.revokedAt !== undefined) {
      this.fail('denied', 'this device has been revoked', CLOSE_CODES.deviceRevoked);
      return;
    }
    const call = prepareCall(frame.method, frame.params, device.role);
    if (!call.ok) {
      if (call.protocol) this.protocolError(frame.id, call.error.code, call.error.message);
      else this.send({ type: 'res', id: frame.id, ok: false, error: call.error.toJSON() });
      return;
    }
    try {
      const result = await call.run(this.methodContext(device.id, frame.id));
      this.send({ type: 'res', id: frame.id, ok: true, result: result ?? null });
    } catch (err) {
      this.send({ type: 'res', id: frame.id, ok: false, error: CoworkError.from(err).toJSON() });
    }
  }

  /** A fixed one-minute window per session, by the injected clock; over it, a typed error and no call. */
  private withinRequestRate(id: string): boolean {
    const now = this.deps.clock.now();
    if (now - this.window.start >= 60_000) this.window = { start: now, count: 0, warned: false };
    this.window.count++;
    const limit = this.deps.requestsPerMinute;
    if (this.window.count <= limit) return true;
    if (!this.window.warned) {
      this.window.warned = true;
      recordSafely(this.deps.recorder, {
        type: 'control.protocol_error',
        ip: this.ip,
        ...(this.deviceId ? { deviceId: this.deviceId } : {}),
        reason: `request rate limit of ${limit} per minute reached`,
      });
    }
    const wait = Math.max(1, Math.ceil((this.window.start + 60_000 - now) / 1000));
    this.send({
      type: 'res',
      id,
      ok: false,
      error: {
        code: 'limitExceeded',
        message: `rate limit: more than ${limit} requests in a minute on this connection; retry in ${wait} s`,
      },
    });
    return false;
  }

  private methodContext(deviceId: string, requestId: string): MethodContext {
    const { store, api } = this.deps;
    return {
      api,
      // The server builds the origin; a client can never choose its policy context.
      origin: { id: `device:${deviceId}`, context: 'gateway' },
      deviceId,
      devices: storeDevices(store),
      subscribeTimeline: () => this.subscribeTimeline(),
      unsubscribeTimeline: () => {
        const had = this.unsubscribeTimeline !== undefined;
        this.unsubscribeTimeline?.();
        this.unsubscribeTimeline = undefined;
        return had;
      },
      signal: this.abort.signal,
      emit: (event, data) => this.send({ type: 'event', event, data }),
      requestId,
    };
  }

  private subscribeTimeline(): boolean {
    if (this.unsubscribeTimeline) return false;
    this.unsubscribeTimeline = this.deps.api.timelineSubscribe((event) => {
      if (this.ws.bufferedAmount > this.deps.maxBufferedBytes) {
        this.close(
          CLOSE_CODES.protocolAbuse,
          'subscriber too slow; reconnect and query the timeline from the last id',
        );
        return;
      }
      this.send({ type: 'event', event: 'timeline', data: event });
    });
    return true;
  }
}
