import { createConnection, type Socket } from 'node:net';
import { CoworkError, ERROR_CODES, type ErrorCode } from '../errors.js';
import { parseServerFrame } from './local-frames.js';
import type { LocalMethod, ServerFrame } from './local-protocol.js';

export interface CallOptions {
  onStream?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  onEvent?: (event: unknown) => void;
  signal?: AbortSignal;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  opts: CallOptions;
}

/** Client of the controller's local control socket (used by every CLI command but `start`). */
export class LocalControlClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private buf = '';

  private constructor(private readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => this.onData(d));
    sock.on('close', () =>
      this.failAll(new CoworkError('unavailable', 'the sandbox controller closed the connection')),
    );
    sock.on('error', () => {});
  }

  static connect(path: string, workspace: string): Promise<LocalControlClient> {
    return new Promise((resolve, reject) => {
      const sock = createConnection(path);
      sock.once('connect', () => resolve(new LocalControlClient(sock)));
      sock.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
          reject(
            new CoworkError(
              'invalidState',
              `no sandbox is running for ${workspace} — start one with \`cowork-vm start --detach\``,
              err,
            ),
          );
        } else if (err.code === 'EACCES') {
          reject(new CoworkError('denied', `cannot open ${path}: the sandbox belongs to another user`, err));
        } else reject(CoworkError.from(err, 'unavailable', `cannot reach the sandbox controller at ${path}`));
      });
    });
  }

  call<T = unknown>(
    method: LocalMethod,
    params: Record<string, unknown> = {},
    opts: CallOptions = {},
  ): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, opts });
      this.sock.write(`${JSON.stringify({ type: 'req', id, method, params })}\n`);
      opts.signal?.addEventListener(
        'abort',
        () => this.sock.write(`${JSON.stringify({ type: 'cancel', id })}\n`),
        {
          once: true,
        },
      );
    });
  }

  close(): void {
    this.sock.end();
    this.sock.destroy();
  }

  private onData(d: string): void {
    this.buf += d;
    let nl = this.buf.indexOf('\n');
    while (nl >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      nl = this.buf.indexOf('\n');
      let frame: ServerFrame | undefined;
      try {
        frame = parseServerFrame(JSON.parse(line));
      } catch {
        frame = undefined;
      }
      if (!frame) {
        this.failAll(new CoworkError('internal', 'the controller sent a malformed frame'));
        return;
      }
      const p = this.pending.get(frame.id);
      if (!p) continue;
      if (frame.type === 'stream') p.opts.onStream?.(frame.stream, Buffer.from(frame.data, 'base64'));
      else if (frame.type === 'event') p.opts.onEvent?.(frame.event);
      else {
        this.pending.delete(frame.id);
        if (frame.ok) p.resolve(frame.result);
        else {
          const code = (ERROR_CODES as readonly string[]).includes(frame.error.code)
            ? (frame.error.code as ErrorCode)
            : 'internal';
          p.reject(new CoworkError(code, frame.error.message));
        }
      }
    }
  }

  private failAll(err: CoworkError): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
