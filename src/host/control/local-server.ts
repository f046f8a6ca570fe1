import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { CoworkError } from '../errors.js';
import { ClientFrame, type LocalMethod, MAX_LOCAL_FRAME_BYTES, type ServerFrame } from './local-protocol.js';

export interface LocalCallContext {
  /** Aborted when the client cancels the request or disconnects. */
  signal: AbortSignal;
  stream(stream: 'stdout' | 'stderr', chunk: Buffer): void;
  event(event: unknown): void;
}

export type LocalHandler = (params: Record<string, unknown>, ctx: LocalCallContext) => Promise<unknown>;
export type LocalHandlers = Record<LocalMethod, LocalHandler>;

/**
 * The controller's local control socket. Only the user who started the sandbox can connect
 * (socket mode 0600 inside a 0700 state dir). Every line is validated; a malformed line gets an
 * error response and the connection stays usable.
 */
export class LocalControlServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly path: string,
    private readonly handlers: LocalHandlers,
  ) {}

  async listen(): Promise<void> {
    if (existsSync(this.path)) {
      if (await socketAnswers(this.path)) {
        throw new CoworkError('invalidState', `another controller is listening on ${this.path}`);
      }
      unlinkSync(this.path); // stale socket from a dead controller
    }
    const server = createServer((sock) => this.onConnection(sock));
    this.server = server;
    const oldMask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.path, () => resolve());
      });
    } finally {
      process.umask(oldMask);
    }
    chmodSync(this.path, 0o600);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    try {
      unlinkSync(this.path);
    } catch {
      /* gone */
    }
  }

  private onConnection(sock: Socket): void {
    this.sockets.add(sock);
    const inflight = new Map<number, AbortController>();
    let buf = '';
    const send = (frame: ServerFrame) => {
      if (!sock.destroyed) sock.write(`${JSON.stringify(frame)}\n`);
    };
    sock.setEncoding('utf8');
    sock.on('data', (data: string) => {
      buf += data;
      if (buf.length > MAX_LOCAL_FRAME_BYTES) {
        send({
          type: 'res',
          id: 0,
          ok: false,
          error: { code: 'invalidArgument', message: 'frame too large' },
        });
        sock.destroy();
        return;
      }
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim()) this.onLine(line, send, inflight);
        nl = buf.indexOf('\n');
      }
    });
    sock.on('close', () => {
      this.sockets.delete(sock);
      for (const ac of inflight.values()) ac.abort();
    });
    sock.on('error', () => sock.destroy());
  }

  private onLine(line: string, send: (f: ServerFrame) => void, inflight: Map<number, AbortController>): void {
    let frame: ClientFrame;
    try {
      frame = ClientFrame.parse(JSON.parse(line));
    } catch (err) {
      const message =
        err instanceof SyntaxError ? 'malformed JSON' : `invalid frame: ${(err as Error).message}`;
      send({ type: 'res', id: 0, ok: false, error: { code: 'invalidArgument', message } });
      return;
    }
    if (frame.type === 'cancel') {
      inflight.get(frame.id)?.abort();
      return;
    }
    const { id, method, params } = frame;
    const ac = new AbortController();
    inflight.set(id, ac);
    const ctx: LocalCallContext = {
      signal: ac.signal,
      stream: (stream, chunk) => send({ type: 'stream', id, stream, data: chunk.toString('base64') }),
      event: (event) => send({ type: 'event', id, event }),
    };
    this.handlers[method](params, ctx)
      .then(
        (result) => send({ type: 'res', id, ok: true, result: result ?? null }),
        (err) => {
          const e = CoworkError.from(err);
          send({ type: 'res', id, ok: false, error: { code: e.code, message: e.message } });
        },
      )
      .finally(() => inflight.delete(id));
  }
}

/** True when something accepts connections on this socket path. */
export function socketAnswers(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    const done = (ok: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    };
    const t = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}
