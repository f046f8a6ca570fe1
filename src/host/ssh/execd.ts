import { EventEmitter } from 'node:events';
import type { ClientChannel } from 'ssh2';
import { CoworkError } from '../errors.js';
import { PID_MARKER, shellQuote } from './command.js';
import { EXECD_SOURCE, EXECD_VERSION } from './execd-guest.js';

/**
 * The host half of the exec service. One exec channel per SSH connection runs the guest program
 * of execd-guest.ts; every command is then a frame on that channel instead of a new sshd
 * session, and the guest answers with frames carrying the command's pid, output and exit.
 *
 * To the exec state machine (exec-channel.ts) each command looks like an ssh2 exec channel
 * (`ExecdChannel`): 'data', stderr 'data', 'exit', two 'close's, write/eof/close. The pid arrives
 * as the same `COWORK-EXEC-PID` line the sshd path's wrapper prints, so timeouts and aborts kill
 * the same process group through the same kill command.
 *
 * Everything the guest sends is untrusted: frames are bounded, unknown ids are ignored, and a
 * malformed frame closes the service (the session then falls back to one sshd session per
 * command). The service adds no reach into the host: it is a process of the agent inside the VM,
 * like the commands it starts.
 */

const HEADER = 9;
/** Output frames are at most 64 KiB; anything above this is a broken or hostile peer. */
const MAX_FRAME = 1 << 20;

type FrameKind = 'S' | 'I' | 'E';

function frame(kind: FrameKind, id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(HEADER);
  head.write(kind, 0, 'latin1');
  head.writeUInt32BE(id, 1);
  head.writeUInt32BE(payload.length, 5);
  return Buffer.concat([head, payload]);
}

// biome-ignore lint/suspicious/noExplicitAny: EventEmitter's own listener type, which ssh2's channel and ours share
type Listener = (...args: any[]) => void;

/** The parts of an ssh2 exec channel the exec state machine uses. */
export interface ExecChannel {
  on(event: string, listener: Listener): unknown;
  readonly stderr: { on(event: string, listener: Listener): unknown };
  write(data: string | Buffer, cb: () => void): unknown;
  eof(): void;
  close(): void;
}

/** One command on the exec service. */
class ExecdChannel extends EventEmitter implements ExecChannel {
  readonly stderr = new EventEmitter();
  #done = false;

  constructor(
    private readonly service: Execd,
    readonly id: number,
    private readonly nonce: string,
  ) {
    super();
  }

  write(data: string | Buffer, cb: () => void): boolean {
    this.service.send(frame('I', this.id, Buffer.isBuffer(data) ? data : Buffer.from(data)), cb);
    return true;
  }

  eof(): void {
    this.service.send(frame('E', this.id));
  }

  /** Stops listening (the caller gave up); the kill, if any, goes through the kill command. */
  close(): void {
    this.end();
  }

  pid(pid: string): void {
    this.stderr.emit('data', Buffer.from(`${PID_MARKER} ${this.nonce} ${pid}\n`));
  }

  exit(code: number | null, signal: string | null): void {
    this.emit('exit', code, signal ?? undefined);
    this.end();
  }

  end(): void {
    if (this.#done) return;
    this.#done = true;
    this.service.forget(this.id);
    this.emit('close');
    this.stderr.emit('close');
  }
}

export interface ExecdStartOptions {
  /** Opens the service's channel (the session's exec with the given line). */
  open: (line: string, setup: (ch: ClientChannel) => void) => Promise<ClientChannel>;
  /** The line that starts the guest program; default execdCommandLine(). */
  line?: string;
  /** How long the guest program may take to say hello (python starts slowly under TCG). */
  timeoutMs?: number;
}

const SOURCE = Buffer.from(EXECD_SOURCE, 'utf8');

/**
 * The command line sshd hands to the login shell: a python3 that reads the program (its length
 * is in the line) from the channel before any frame, so `ps` in the guest shows a short line.
 */
export function execdCommandLine(): string {
  const boot = [
    'import os',
    `n=${SOURCE.length}`,
    'b=b""',
    'while len(b)<n:',
    ' c=os.read(0,n-len(b))',
    ' if not c: raise SystemExit(1)',
    ' b+=c',
    'exec(compile(b,"cowork-execd","exec"))',
  ].join('\n');
  return `exec python3 -I -S -u -c ${shellQuote(boot, 'exec service')} cowork-execd`;
}

export class Execd {
  readonly #ch: ClientChannel;
  readonly #open = new Map<number, ExecdChannel>();
  readonly #lost = new Set<(err: CoworkError) => void>();
  #nextId = 1;
  #buf: Buffer = Buffer.alloc(0);
  #alive = true;
  #stderr = '';
  #why = '';

  private constructor(ch: ClientChannel) {
    this.#ch = ch;
    this.#wire();
  }

  /**
   * Starts the guest program and waits for its hello. Rejects 'unsupported' when the guest has
   * no python3 (or the program fails to start), with its stderr in the message.
   */
  static start(opts: ExecdStartOptions): Promise<Execd> {
    return new Promise<Execd>((resolve, reject) => {
      let service: Execd | undefined;
      let settled = false;
      const timer = setTimeout(
        () => fail(`it did not answer within ${Math.round((opts.timeoutMs ?? 30_000) / 1000)} s`),
        opts.timeoutMs ?? 30_000,
      );
      const fail = (why: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        service?.stop(why);
        reject(new CoworkError('unsupported', `the guest's exec service did not start: ${why}`));
      };
      opts
        .open(opts.line ?? execdCommandLine(), (ch) => {
          const s = new Execd(ch);
          service = s;
          ch.write(SOURCE);
          s.#onHello = () => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            resolve(s);
          };
          s.#onEarlyEnd = () => fail(s.#why || 'it exited');
        })
        .catch((err: unknown) => fail(err instanceof Error ? err.message : String(err)));
    });
  }

  #onHello: () => void = () => {};
  #onEarlyEnd: () => void = () => {};

  get alive(): boolean {
    return this.#alive;
  }

  /** Runs `fail` when the service stops while commands run on it; returns the unregister function. */
  onLost(fail: (err: CoworkError) => void): () => void {
    if (!this.#alive) {
      const err = this.#lostError();
      queueMicrotask(() => fail(err));
      return () => undefined;
    }
    this.#lost.add(fail);
    return () => this.#lost.delete(fail);
  }

  /** Starts `script` (see command.ts execdScript) with the given shell; `setup` runs before any event. */
  open(
    req: { script: string; shell?: string; nonce: string },
    setup: (ch: ExecChannel) => void,
  ): ExecChannel {
    if (!this.#alive) throw this.#lostError();
    const id = this.#nextId;
    this.#nextId = this.#nextId >= 0xfffffff0 ? 1 : this.#nextId + 1;
    const ch = new ExecdChannel(this, id, req.nonce);
    this.#open.set(id, ch);
    // The start frame first: setup writes stdin. Replies arrive on a later tick, after setup.
    this.send(frame('S', id, Buffer.from(JSON.stringify({ script: req.script, shell: req.shell ?? null }))));
    setup(ch);
    return ch;
  }

  /** @internal */
  send(data: Buffer, cb?: () => void): void {
    if (!this.#alive) {
      if (cb) queueMicrotask(cb);
      return;
    }
    this.#ch.write(data, cb);
  }

  /** @internal */
  forget(id: number): void {
    this.#open.delete(id);
  }

  /** Closes the channel (the guest program kills what it started and exits). */
  stop(why = 'the session closed it'): void {
    if (!this.#alive) return;
    this.#why ||= why;
    this.#alive = false;
    this.#ch.close();
    this.#lostAll();
  }

  #lostError(): CoworkError {
    return new CoworkError(
      'unavailable',
      `the guest's exec service stopped while the command ran (${this.#why || 'it exited'}); ` +
        'something in the guest may have killed it — the command may or may not have finished; check its effects before running it again',
    );
  }

  #lostAll(): void {
    const err = this.#lostError();
    // The commands' own lost handlers settle them (after killing what they started); their
    // channels get no 'close', which would settle them first with a vaguer error.
    for (const fail of [...this.#lost]) fail(err);
    this.#lost.clear();
    this.#open.clear();
  }

  /** Attaches the channel's events (from the constructor, inside ssh2's open callback). */
  #wire(): void {
    const ch = this.#ch;
    ch.on('data', (d: Buffer) => this.#data(d));
    ch.stderr.on('data', (d: Buffer) => {
      if (this.#stderr.length < 2000) this.#stderr += d.toString('utf8');
    });
    ch.on('error', () => undefined);
    ch.on('close', () => {
      if (!this.#alive) return;
      this.#why ||= this.#stderr.trim().split('\n').slice(-2).join(' ').slice(0, 300) || 'it exited';
      this.#alive = false;
      this.#onEarlyEnd();
      this.#lostAll();
    });
  }

  #data(chunk: Buffer): void {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    while (this.#buf.length >= HEADER) {
      const kind = String.fromCharCode(this.#buf[0] as number);
      const id = this.#buf.readUInt32BE(1);
      const len = this.#buf.readUInt32BE(5);
      if (len > MAX_FRAME) {
        this.stop(`it sent a ${len}-byte frame (at most ${MAX_FRAME})`);
        return;
      }
      if (this.#buf.length < HEADER + len) return;
      const payload = this.#buf.subarray(HEADER, HEADER + len);
      this.#buf = this.#buf.subarray(HEADER + len);
      if (!this.#frame(kind, id, payload)) return;
    }
  }

  /** false when the frame broke the protocol (the service is stopped). */
  #frame(kind: string, id: number, payload: Buffer): boolean {
    if (kind === 'H') {
      let hello: { v?: unknown } = {};
      try {
        hello = JSON.parse(payload.toString('utf8'));
      } catch {}
      if (hello.v !== EXECD_VERSION) {
        this.stop(`it speaks version ${String(hello.v)}, not ${EXECD_VERSION}`);
        return false;
      }
      this.#onHello();
      return true;
    }
    const ch = this.#open.get(id);
    if (!ch) return true; // a command we gave up on, or noise
    switch (kind) {
      case 'P': {
        const pid = payload.toString('latin1');
        if (/^[0-9]{1,10}$/.test(pid)) ch.pid(pid);
        return true;
      }
      case 'O':
        ch.emit('data', Buffer.from(payload));
        return true;
      case 'R':
        ch.stderr.emit('data', Buffer.from(payload));
        return true;
      case 'X': {
        let st: { code?: unknown; signal?: unknown } = {};
        try {
          st = JSON.parse(payload.toString('utf8'));
        } catch {}
        const code = Number.isInteger(st.code) ? (st.code as number) : null;
        const signal = typeof st.signal === 'string' && /^[A-Z0-9]{1,16}$/.test(st.signal) ? st.signal : null;
        ch.exit(code, signal);
        return true;
      }
      case 'F': {
        let msg = 'unknown error';
        try {
          msg = String(JSON.parse(payload.toString('utf8')).message).slice(0, 500);
        } catch {}
        ch.stderr.emit(
          'data',
          Buffer.from(`cowork-vm: the command could not be started in the guest: ${msg}\n`),
        );
        ch.exit(127, null);
        return true;
      }
      default:
        this.stop(`it sent an unknown frame type ${JSON.stringify(kind)}`);
        return false;
    }
  }
}
