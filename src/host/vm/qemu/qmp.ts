import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { CoworkError } from '../../errors.js';

/**
 * A tiny QMP (QEMU Machine Protocol) client over a unix socket: JSON objects, one per line.
 * Server greets with {"QMP":{...}}; the client MUST send qmp_capabilities before any command;
 * replies carry the request's `id`; asynchronous events ({"event":...}) may arrive at any time.
 */

const greetingSchema = z.object({
  QMP: z.object({ version: z.unknown(), capabilities: z.unknown() }).loose(),
});
const returnSchema = z.object({ return: z.unknown(), id: z.union([z.string(), z.number()]).optional() });
const errorSchema = z.object({
  error: z.object({ class: z.string(), desc: z.string() }),
  id: z.union([z.string(), z.number()]).optional(),
});
const eventSchema = z.object({
  event: z.string(),
  data: z.unknown().optional(),
  timestamp: z.object({ seconds: z.number(), microseconds: z.number() }).optional(),
});

export type QmpEvent = z.infer<typeof eventSchema>;
export type QmpGreeting = z.infer<typeof greetingSchema>;

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: CoworkError) => void;
  timer: NodeJS.Timeout;
}

export interface QmpConnectOptions {
  /** Keep retrying while the socket does not exist yet / refuses (QEMU still starting). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export class QmpClient extends EventEmitter {
  private buffer = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private closed = false;
  private greetingWaiter?: { resolve: (g: QmpGreeting) => void; reject: (e: CoworkError) => void };
  greeting?: QmpGreeting;

  private constructor(private readonly socket: Socket) {
    super();
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => this.fail(CoworkError.from(err, 'unavailable', 'QMP socket error')));
    socket.on('close', () =>
      this.fail(new CoworkError('unavailable', 'QMP connection closed (QEMU exited?)')),
    );
  }

  /** Connects, reads the greeting and negotiates capabilities. */
  static async connect(socketPath: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const deadline = Date.now() + (opts.timeoutMs ?? 5000);
    for (;;) {
      opts.signal?.throwIfAborted();
      try {
        const socket = await openSocket(socketPath);
        const client = new QmpClient(socket);
        try {
          await client.handshake(Math.max(500, deadline - Date.now()));
        } catch (err) {
          client.close();
          throw err;
        }
        return client;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const retryable = code === 'ENOENT' || code === 'ECONNREFUSED';
        if (!retryable || Date.now() >= deadline) {
          throw CoworkError.from(err, retryable ? 'timeout' : 'unavailable', `QMP connect to ${socketPath}`);
        }
        await sleep(50);
      }
    }
  }

  private async handshake(timeoutMs: number): Promise<void> {
    const greeting = await new Promise<QmpGreeting>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new CoworkError('timeout', `no QMP greeting within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.greetingWaiter = {
        resolve: (g) => {
          clearTimeout(timer);
          resolve(g);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
    this.greeting = greeting;
    await this.execute('qmp_capabilities', undefined, { timeoutMs });
  }

  /** Runs a command; resolves to its `return` value, rejects with the QMP error class and text. */
  execute<T = unknown>(
    command: string,
    args?: Record<string, unknown>,
    opts: { timeoutMs?: number } = {},
  ): Promise<T> {
    if (this.closed)
      return Promise.reject(new CoworkError('unavailable', `QMP is closed; cannot run ${command}`));
    const id = `c${this.nextId++}`;
    const timeoutMs = opts.timeoutMs ?? 5000;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new CoworkError('timeout', `QMP command ${command} got no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      const msg: Record<string, unknown> = { execute: command, id };
      if (args) msg.arguments = args;
      this.socket.write(`${JSON.stringify(msg)}\n`);
    });
  }

  close(): void {
    this.fail(new CoworkError('cancelled', 'QMP client closed'));
    this.socket.destroy();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line) this.onMessage(line);
    }
    if (this.buffer.length > 1 << 20) {
      this.fail(new CoworkError('unavailable', 'QMP peer sent an over-long line; closing'));
      this.socket.destroy();
    }
  }

  private onMessage(line: string): void {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      this.emit('protocolError', CoworkError.from(err, 'unavailable', 'QMP sent invalid JSON'));
      return;
    }
    const ev = eventSchema.safeParse(value);
    if (ev.success) {
      this.emit('event', ev.data);
      return;
    }
    const greeting = greetingSchema.safeParse(value);
    if (greeting.success && this.greetingWaiter) {
      this.greetingWaiter.resolve(greeting.data);
      this.greetingWaiter = undefined;
      return;
    }
    const ok = returnSchema.safeParse(value);
    const bad = ok.success ? undefined : errorSchema.safeParse(value);
    const id = ok.success ? ok.data.id : bad?.success ? bad.data.id : undefined;
    const pending = id === undefined ? undefined : this.pending.get(String(id));
    if (!pending) {
      this.emit(
        'protocolError',
        new CoworkError('unavailable', `unexpected QMP message: ${line.slice(0, 200)}`),
      );
      return;
    }
    this.pending.delete(String(id));
    clearTimeout(pending.timer);
    if (ok.success) pending.resolve(ok.data.return);
    else if (bad?.success) {
      const { class: cls, desc } = bad.data.error;
      pending.reject(new CoworkError('unavailable', `QMP ${pending.command} failed: ${cls}: ${desc}`));
    }
  }

  private fail(err: CoworkError): void {
    if (this.closed) return;
    this.closed = true;
    this.greetingWaiter?.reject(err);
    this.greetingWaiter = undefined;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    this.emit('close', err);
  }
}

function openSocket(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    const onError = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}
