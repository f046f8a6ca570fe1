import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import type { ClientChannel, SFTPWrapper } from 'ssh2';
import ssh2 from 'ssh2';

// ssh2 is CommonJS and `utils` is not statically detectable as a named export under Node ESM.
const { utils } = ssh2;

import { CoworkError } from '../errors.js';
import { ChannelSlots } from './channel-slots.js';
import { killExecCommand } from './command.js';
import { runExecChannel } from './exec-channel.js';
import type { GuestListenerSpec } from './guest-listener.js';
import { fingerprintOf } from './keys.js';
import { sftpList, sftpReadFile, sftpStat, sftpWriteFile } from './sftp.js';
import { connectSsh, type SshConnection } from './ssh-connection.js';
import type { DirEntry, ExecOptions, ExecResult, FileStat, GuestSession } from './types.js';

export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024;

export interface SshGuestSessionOptions {
  /** Opens a fresh byte stream to the guest's sshd, e.g. `() => handle.connect(22)`. Called again on reconnect. */
  connect: () => Promise<Duplex>;
  username: string;
  /** OpenSSH private key (the sandbox's client key). */
  privateKey: string | Buffer;
  /** The guest host key to pin: its public key line (or the private key). Anything else is refused. */
  hostKey: string | Buffer;
  /** Handshake + authentication limit per attempt. Default 20 s (key exchange is slow under TCG). */
  readyTimeoutMs?: number;
  /** Called when an established connection drops (not on close()). The next call reconnects. */
  onDisconnect?: (err: CoworkError) => void;
  /** Whether the VM still runs, e.g. `() => handle.state === 'running'`; when false, calls fail at once. */
  isVmAlive?: () => boolean;
  /** Working directory when exec gets none. Default /workspace. */
  defaultCwd?: string;
  /** Shell that runs commands; default the user's login shell. */
  shell?: string;
  /**
   * The server's MaxSessions (OpenSSH default 10). One slot is kept for SFTP and one for kills;
   * the rest bound concurrent execs — more wait in line. The guest sshd should set it higher.
   */
  maxSessions?: number;
  /**
   * A port the guest's sshd listens on for the host on every connection (the egress proxy under
   * QEMU), bound before the connection serves any call — so before any agent command runs — and
   * again on each reconnect. If sshd refuses it (a guest process took the port while the
   * connection was down), the connection is dropped and the call fails 'unavailable' without
   * retrying: the guest never gets a connection whose forward is missing.
   */
  guestListener?: GuestListenerSpec;
  reconnect?: { attempts?: number; initialDelayMs?: number; maxDelayMs?: number };
  keepaliveIntervalMs?: number;
  /** After killing a timed-out/aborted command, how long to wait for its channel to close. Default 5 s. */
  killGraceMs?: number;
}

/**
 * GuestSession over ONE persistent ssh2 connection per sandbox: every exec, the SFTP channel and
 * forwards are channels on it (a fresh connection costs ~1.2 s under TCG). If the connection
 * drops, calls in flight reject 'unavailable' and the next call reconnects (bounded, with
 * backoff). The guest host key is pinned; a mismatch is refused and never retried.
 */
export class SshGuestSession implements GuestSession {
  private conn: SshConnection | undefined;
  private connecting: Promise<SshConnection> | undefined;
  private closed = false;
  /** Nonces of execs in flight (see wrapCommand), so close() can kill what they started. */
  private readonly running = new Set<string>();
  private readonly execSlots: ChannelSlots;
  private readonly killSlots = new ChannelSlots(1);
  private readonly sftpSlots = new ChannelSlots(1);

  private constructor(private readonly opts: SshGuestSessionOptions) {
    const maxSessions = opts.maxSessions ?? 10;
    if (!Number.isInteger(maxSessions) || maxSessions < 3) {
      throw new CoworkError(
        'invalidArgument',
        `maxSessions must be an integer >= 3 (sshd MaxSessions), got ${maxSessions}`,
      );
    }
    this.execSlots = new ChannelSlots(maxSessions - 2);
  }

  /** Connects (with the same bounded retries as a reconnect) and returns the session. */
  static async connect(opts: SshGuestSessionOptions): Promise<SshGuestSession> {
    const parsed = utils.parseKey(opts.privateKey);
    if (parsed instanceof Error || !(Array.isArray(parsed) ? parsed[0] : parsed)?.isPrivateKey()) {
      throw new CoworkError(
        'invalidArgument',
        'privateKey is not an OpenSSH private key; pass the sandbox client key',
      );
    }
    fingerprintOf(opts.hostKey); // throws invalidArgument when the pinned key is unusable
    const session = new SshGuestSession(opts);
    await session.connection();
    return session;
  }

  get connected(): boolean {
    return this.conn?.alive === true;
  }

  async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    this.assertOpen();
    if (typeof command !== 'string' || command.trim() === '') {
      throw new CoworkError('invalidArgument', 'the command is empty; give the shell command to run');
    }
    const maxOutputBytes = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    if (!Number.isSafeInteger(maxOutputBytes) || maxOutputBytes < 0) {
      throw new CoworkError(
        'invalidArgument',
        `maxOutputBytes must be a non-negative integer, got ${maxOutputBytes}`,
      );
    }
    if (opts.timeoutMs !== undefined && !(Number.isFinite(opts.timeoutMs) && opts.timeoutMs > 0)) {
      throw new CoworkError(
        'invalidArgument',
        `timeoutMs must be a positive number of milliseconds, got ${opts.timeoutMs}`,
      );
    }
    const startedAt = performance.now();
    const release = await this.execSlots.acquire(opts.signal);
    const nonce = randomBytes(8).toString('hex');
    this.running.add(nonce);
    try {
      const conn = await this.connection();
      const settings = {
        nonce,
        cwd: opts.cwd ?? this.opts.defaultCwd ?? '/workspace',
        shell: this.opts.shell,
        maxOutputBytes,
        killGraceMs: this.opts.killGraceMs ?? 5000,
      };
      const transport = {
        open: (line: string, setup: (ch: ClientChannel) => void) => conn.exec(line, setup),
        kill: (target: { pid?: number; nonce: string }) => this.killExec(conn, target),
        onLost: (fail: (err: CoworkError) => void) => conn.onLost(fail),
      };
      return await runExecChannel(transport, command, opts, settings, startedAt);
    } finally {
      this.running.delete(nonce);
      release();
    }
  }

  readFile(path: string, opts: { maxBytes?: number } = {}): Promise<Buffer> {
    return this.withSftp((sftp) => sftpReadFile(sftp, path, opts.maxBytes));
  }

  writeFile(path: string, data: string | Buffer, opts: { mode?: number } = {}): Promise<void> {
    return this.withSftp((sftp) => sftpWriteFile(sftp, path, data, opts));
  }

  stat(path: string): Promise<FileStat> {
    return this.withSftp((sftp) => sftpStat(sftp, path));
  }

  list(path: string): Promise<DirEntry[]> {
    return this.withSftp((sftp) => sftpList(sftp, path));
  }

  async forward(guestPort: number, guestHost = '127.0.0.1'): Promise<Duplex> {
    this.assertOpen();
    if (!Number.isInteger(guestPort) || guestPort < 1 || guestPort > 65535) {
      throw new CoworkError('invalidArgument', `guest port must be an integer 1-65535, got ${guestPort}`);
    }
    const conn = await this.connection();
    return conn.forward(guestHost, guestPort);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new CoworkError('invalidState', 'the guest session is closed; open a new one');
    this.execSlots.close(err);
    this.killSlots.close(err);
    this.sftpSlots.close(err);
    const conn = this.conn ?? (await this.connecting?.catch(() => undefined));
    this.conn = undefined;
    const reason = new CoworkError('cancelled', 'the guest session was closed while the command ran');
    conn?.abandonInFlight(reason);
    if (conn?.alive && this.running.size > 0) await this.killRunning(conn);
    await conn?.end(reason);
  }

  /**
   * Closing a channel does not stop its command (no pty, so no SIGHUP): kill what is still
   * running, by env tag, before hanging up. Bounded, because close() must not hang.
   */
  private async killRunning(conn: SshConnection): Promise<void> {
    const line = [...this.running].map((nonce) => killExecCommand({ nonce })).join('; ');
    const done = new Promise<void>((resolve) => {
      conn
        .exec(line, (ch) => {
          ch.once('close', () => resolve());
          ch.resume();
          ch.stderr.resume();
          ch.eof();
        })
        .catch(() => resolve());
    });
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.opts.killGraceMs ?? 5000);
    });
    await Promise.race([done, limit]);
    clearTimeout(timer);
  }

  private assertOpen(): void {
    if (this.closed) throw new CoworkError('invalidState', 'the guest session is closed; open a new one');
  }

  private async withSftp<T>(fn: (sftp: SFTPWrapper) => Promise<T>): Promise<T> {
    this.assertOpen();
    const conn = await this.connection();
    // One SFTP channel per connection, opened on first use; serialised opening via sftpSlots.
    const release = await this.sftpSlots.acquire();
    let sftp: SFTPWrapper;
    try {
      sftp = await conn.sftp();
    } finally {
      release();
    }
    return fn(sftp);
  }

  private async killExec(conn: SshConnection, target: { pid?: number; nonce: string }): Promise<void> {
    const release = await this.killSlots.acquire();
    try {
      await new Promise<void>((resolve, reject) => {
        conn
          .exec(killExecCommand(target), (ch) => {
            ch.once('close', () => resolve());
            ch.resume();
            ch.stderr.resume();
            ch.eof();
          })
          .catch(reject);
      });
    } finally {
      release();
    }
  }

  /** The live connection, or a (shared) reconnect attempt. */
  private connection(): Promise<SshConnection> {
    this.assertOpen();
    if (this.conn?.alive) return Promise.resolve(this.conn);
    this.connecting ??= this.connectWithRetry().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connectWithRetry(): Promise<SshConnection> {
    const attempts = this.opts.reconnect?.attempts ?? 5;
    let wait = this.opts.reconnect?.initialDelayMs ?? 250;
    const maxWait = this.opts.reconnect?.maxDelayMs ?? 2000;
    let last: unknown;
    for (let i = 0; i < attempts; i++) {
      this.assertVmAlive();
      if (i > 0) {
        await delay(wait);
        wait = Math.min(wait * 2, maxWait);
        this.assertVmAlive();
      }
      this.assertOpen();
      let conn: SshConnection;
      try {
        conn = await connectSsh({
          connect: this.opts.connect,
          username: this.opts.username,
          privateKey: this.opts.privateKey,
          hostKey: this.opts.hostKey,
          readyTimeoutMs: this.opts.readyTimeoutMs ?? 20_000,
          keepaliveIntervalMs: this.opts.keepaliveIntervalMs ?? 15_000,
          onClose: (c, err) => this.onConnectionLost(c, err),
        });
      } catch (err) {
        if (CoworkError.is(err, 'denied') || CoworkError.is(err, 'invalidArgument')) throw err;
        last = err;
        continue;
      }
      if (this.closed) {
        await conn.end(new CoworkError('invalidState', 'the guest session is closed'));
        this.assertOpen();
      }
      await this.bindGuestListener(conn);
      this.conn = conn;
      return conn;
    }
    this.assertVmAlive();
    const why = last instanceof Error ? last.message : String(last);
    throw new CoworkError(
      'unavailable',
      `cannot reach the guest's SSH server after ${attempts} attempts (${why}); the VM may have stopped or sshd in the guest died — check 'cowork-vm status' and the console log`,
      last,
    );
  }

  /** A refused listener is not retried: a port taken in the guest stays taken. */
  private async bindGuestListener(conn: SshConnection): Promise<void> {
    const spec = this.opts.guestListener;
    if (!spec) return;
    try {
      await conn.listenInGuest(spec);
    } catch (err) {
      const refused = CoworkError.from(err, 'unavailable');
      await conn.end(refused);
      throw refused;
    }
  }

  private assertVmAlive(): void {
    if (this.opts.isVmAlive && !this.opts.isVmAlive()) {
      throw new CoworkError(
        'unavailable',
        'the VM is not running, so the guest cannot be reached; start the sandbox again',
      );
    }
  }

  private onConnectionLost(conn: SshConnection, err: CoworkError): void {
    if (this.conn === conn) this.conn = undefined;
    if (!this.closed) this.opts.onDisconnect?.(err);
  }
}
