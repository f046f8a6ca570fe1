import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { WebSocket } from 'ws';
import { z } from 'zod';
import { ApiClient } from '../api/client.js';
import { CoworkError } from '../errors.js';
import { computeAuthHmac, decodeDeviceKey } from './auth.js';
import {
  type ChallengeFrame,
  type ErrorBody,
  roleSchema,
  type ServerFrame,
  serverFrameSchema,
} from './protocol.js';

/** What a client keeps after pairing: its id, its key (a secret: store it 0600) and the server it belongs to. */
export const deviceCredentialsSchema = z.strictObject({
  deviceId: z.string(),
  deviceKey: z.string(),
  serverId: z.string(),
  role: roleSchema,
});
export type DeviceCredentials = z.infer<typeof deviceCredentialsSchema>;

export function saveCredentials(file: string, creds: DeviceCredentials): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, JSON.stringify(creds, null, 2) + '\n', { mode: 0o600 });
  chmodSync(file, 0o600);
}

export function loadCredentials(file: string): DeviceCredentials {
  try {
    return deviceCredentialsSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
  } catch (err) {
    throw CoworkError.from(err, 'invalidArgument', `cannot read device credentials from ${file}; pair again`);
  }
}

export interface ControlClientOptions {
  /** Sent as the Origin header (browsers always send one; other clients usually do not). */
  origin?: string;
  /** For wss:// with a self-signed certificate. */
  ca?: string | Buffer;
  timeoutMs?: number;
}

export interface CloseInfo {
  code: number;
  reason: string;
}

function errorFromBody(body: ErrorBody): CoworkError {
  return new CoworkError(body.code, body.message);
}

/**
 * A client of the control API: connect, pair, authenticate, call, subscribe. Used by the tests,
 * the dashboard and the menubar. Emits 'event' (EventFrame) and 'close' (CloseInfo).
 */
export class ControlClient extends EventEmitter {
  readonly closed: Promise<CloseInfo>;
  private readonly pending = new Map<
    string,
    { resolve: (v: unknown) => void; reject: (e: CoworkError) => void }
  >();
  private waiter: ((frame: ServerFrame) => void) | undefined;
  private closeInfo: CloseInfo | undefined;

  private constructor(
    private readonly ws: WebSocket,
    readonly challenge: ChallengeFrame,
    private readonly timeoutMs: number,
  ) {
    super();
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        const err = new CoworkError(
          'unavailable',
          `control connection closed (${code} ${reason.toString()})`,
          this.closeInfo,
        );
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
        this.waiter = undefined;
        this.emit('close', this.closeInfo);
        resolve(this.closeInfo);
      });
    });
    ws.on('message', (data) => this.onFrame(data.toString()));
  }

  /** Opens the connection and resolves once the server's challenge has arrived. */
  static connect(url: string, opts: ControlClientOptions = {}): Promise<ControlClient> {
    const timeoutMs = opts.timeoutMs ?? 15_000;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, {
        ...(opts.origin ? { origin: opts.origin } : {}),
        ...(opts.ca ? { ca: opts.ca } : {}),
      });
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new CoworkError('timeout', `no challenge from ${url} within ${timeoutMs} ms`));
      }, timeoutMs);
      const fail = (err: CoworkError) => {
        clearTimeout(timer);
        reject(err);
      };
      ws.once('error', (err) => fail(CoworkError.from(err, 'unavailable', `cannot connect to ${url}`)));
      ws.once('close', (code, reason) =>
        fail(
          new CoworkError('denied', `server closed the connection (${code} ${reason.toString()})`, {
            code,
            reason: reason.toString(),
          }),
        ),
      );
      ws.once('message', (data) => {
        clearTimeout(timer);
        ws.removeAllListeners('close');
        ws.removeAllListeners('error');
        ws.on('error', () => {});
        const parsed = serverFrameSchema.safeParse(JSON.parse(data.toString()));
        if (!parsed.success || parsed.data.type !== 'challenge') {
          ws.terminate();
          return reject(
            new CoworkError(
              'unavailable',
              `${url} did not start with a challenge: not a cowork-vm control API`,
            ),
          );
        }
        resolve(new ControlClient(ws, parsed.data, timeoutMs));
      });
    });
  }

  get closeStatus(): CloseInfo | undefined {
    return this.closeInfo;
  }

  /** Redeems a pairing code; resolves with the credentials to store (the key is sent only this once). */
  async pair(code: string, name: string): Promise<DeviceCredentials> {
    const frame = await this.exchange({ type: 'pair', code, name });
    if (frame.type !== 'paired')
      throw new CoworkError('internal', `unexpected '${frame.type}' frame while pairing`);
    return {
      deviceId: frame.deviceId,
      deviceKey: frame.deviceKey,
      serverId: frame.serverId,
      role: frame.role,
    };
  }

  /** Answers this connection's challenge with the device key. */
  async authenticate(creds: DeviceCredentials): Promise<{ deviceId: string; role: string; name: string }> {
    if (creds.serverId !== this.challenge.serverId) {
      throw new CoworkError(
        'denied',
        `this server is '${this.challenge.serverId}', but the credentials belong to '${creds.serverId}'; pair with this server`,
      );
    }
    const hmac = computeAuthHmac(
      decodeDeviceKey(creds.deviceKey),
      this.challenge.nonce,
      this.challenge.serverId,
    );
    const frame = await this.exchange({
      type: 'auth',
      deviceId: creds.deviceId,
      nonce: this.challenge.nonce,
      hmac,
    });
    if (frame.type !== 'auth-ok')
      throw new CoworkError('internal', `unexpected '${frame.type}' frame while authenticating`);
    return { deviceId: frame.deviceId, role: frame.role, name: frame.name };
  }

  /**
   * Calls a method; rejects with the server's CoworkError (code and message) on failure, or with
   * 'timeout' after `timeoutMs` if given (long calls such as exec have no default limit).
   */
  call(method: string, params?: unknown, opts: { timeoutMs?: number } = {}): Promise<unknown> {
    const id = randomUUID();
    return new Promise((resolve, reject) => {
      if (this.closeInfo) {
        return reject(new CoworkError('unavailable', `control connection closed (${this.closeInfo.code})`));
      }
      const timer =
        opts.timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              this.pending.delete(id);
              reject(new CoworkError('timeout', `no answer to '${method}' within ${opts.timeoutMs} ms`));
            }, opts.timeoutMs);
      const done = () => clearTimeout(timer);
      this.pending.set(id, {
        resolve: (v) => {
          done();
          resolve(v);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      });
      this.ws.send(JSON.stringify({ type: 'req', id, method, ...(params !== undefined ? { params } : {}) }));
    });
  }

  /** The same calls, with params and results typed by the contract (src/host/api/contract.ts). */
  typed(): ApiClient<'remote'> {
    return new ApiClient<'remote'>({ call: (method, params) => this.call(method, params) });
  }

  /** Subscribes to timeline events; returns the unsubscribe function. */
  async subscribe(listener: (event: unknown) => void): Promise<() => Promise<void>> {
    const onEvent = (frame: { event: string; data: unknown }) => {
      if (frame.event === 'timeline') listener(frame.data);
    };
    this.on('event', onEvent);
    await this.call('timeline.subscribe');
    return async () => {
      this.off('event', onEvent);
      await this.call('timeline.unsubscribe');
    };
  }

  /** Sends raw text or bytes (tests use it to send malformed frames). */
  sendRaw(data: string | Buffer, opts: { binary?: boolean } = {}): void {
    this.ws.send(data, { binary: opts.binary ?? false });
  }

  async close(): Promise<CloseInfo> {
    if (!this.closeInfo) this.ws.close(1000, 'client done');
    return await this.closed;
  }

  private exchange(frame: object): Promise<ServerFrame> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new CoworkError('timeout', `no answer from the control API within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      const onClose = (info: CloseInfo) => {
        clearTimeout(timer);
        reject(new CoworkError('denied', `server closed the connection (${info.code} ${info.reason})`, info));
      };
      this.once('close', onClose);
      this.waiter = (f) => {
        clearTimeout(timer);
        this.off('close', onClose);
        this.waiter = undefined;
        if (f.type === 'error') reject(errorFromBody(f.error));
        else resolve(f);
      };
      this.ws.send(JSON.stringify(frame));
    });
  }

  private onFrame(text: string): void {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return;
    }
    const parsed = serverFrameSchema.safeParse(json);
    if (!parsed.success) return;
    const frame = parsed.data;
    if (frame.type === 'res') {
      if (frame.id === null) {
        this.emit('protocol-error', frame.ok ? undefined : frame.error);
        return;
      }
      const p = this.pending.get(frame.id);
      if (!p) return;
      this.pending.delete(frame.id);
      if (frame.ok) p.resolve(frame.result);
      else p.reject(errorFromBody(frame.error));
    } else if (frame.type === 'event') {
      this.emit('event', frame);
    } else if (this.waiter) {
      this.waiter(frame);
    } else if (frame.type === 'error') {
      this.emit('protocol-error', frame.error);
    }
  }
}
