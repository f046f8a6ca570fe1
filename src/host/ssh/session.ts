import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import type { SFTPWrapper } from 'ssh2';
import ssh2 from 'ssh2';

// ssh2 is CommonJS and `utils` is not statically detectable as a named export under Node ESM.
const { utils } = ssh2;

import { CoworkError } from '../errors.js';
import { ChannelSlots } from './channel-slots.js';
import { execdScript, killExecCommand, wrapCommand } from './command.js';
import { type ExecRequest, type ExecTransport, runExecChannel } from './exec-channel.js';
import { type ExecChannel, Execd } from './execd.js';
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
  /**
   * Run commands on the guest's exec service (execd.ts: one channel, shells started ahead)
   * instead of one sshd session each. Default true; without python3 in the guest, or after the
   * service was killed three times on one connection, commands use sshd sessions.
   */
  execService?: boolean;
  /** Tests only: the command line that starts the exec service (default execd.ts execdCommandLine). */
  execServiceLine?: string;
}

/** How commands reach the guest: the exec service, or one sshd session each (and why). */
export interface ExecPath {
  mode: 'execd' | 'sshd';
  reason?: string;
}

/** Times the exec service may stop on one connection before that connection stops restarting it. */
const EXECD_RESTARTS = 3;

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
  /** Execs in flight by nonce (see wrapCommand), with their guest pid once known, so close() can kill what they started. */
  private readonly running = new Map<string, { pid?: number }>();
  /** The exec service of each connection (started with it; undefined: not available). */
  private readonly execd = new WeakMap<
    SshConnection,
    { service: Promise<Execd | undefined>; stops: number }
  >();
  private execPathNow: ExecPath = { mode: 'sshd', reason: 'not connected yet' };
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
    const entry: { pid?: number } = {};
    this.running.set(nonce, entry);
    try {
      const conn = await this.connection();
      const settings = {
        nonce,
        cwd: opts.cwd ?? this.opts.defaultCwd ?? '/workspace',
        shell: this.opts.shell,
        maxOutputBytes,
        killGraceMs: this.opts.killGraceMs ?? 5000,
        onPid: (pid: number) => {
          entry.pid = pid;
        },
      };
      const execd = await this.execdFor(conn);
      const kill = (target: { pid?: number; nonce: string }) => this.killExec(conn, target);
      const transport: ExecTransport = execd
        ? {
            open: async (req: ExecRequest, setup: (ch: ExecChannel) => void) =>
              execd.open(
                { script: execdScript(req.command, req), shell: req.shell, nonce: req.nonce },
                setup,
              ),
            kill,
            onLost: (fail) => {
              const a = conn.onLost(fail);
              // The service's end does not end the command: kill what it started (bounded), then report.
              const b = execd.onLost((err) => {
                const limit = new Promise<void>((r) => setTimeout(r, settings.killGraceMs).unref());
                void Promise.race([kill({ pid: entry.pid, nonce }).catch(() => undefined), limit]).then(() =>
                  fail(err),
                );
              });
              return () => {
                a();
                b();
              };
            },
          }
        : {
            open: async (req: ExecRequest, setup: (ch: ExecChannel) => void) =>
              conn.exec(wrapCommand(req.command, req), setup),
            kill,
            onLost: (fail) => conn.onLost(fail),
          };
      return await runExecChannel(transport, command, opts, settings, startedAt);
    } finally {
      this.running.delete(nonce);
      release();
    }
  }

  /** How commands reach the guest right now, and why not the exec service when not (the bench prints it). */
  get execPath(): ExecPath {
    return { ...this.execPathNow };
  }

  /**
   * The connection's exec service: started once per connection, restarted when something in the
   * guest stopped it (up to EXECD_RESTARTS times), undefined when it cannot run there.
   */
  private async execdFor(conn: SshConnection): Promise<Execd | undefined> {
    if (this.opts.execService === false) {
      this.execPathNow = { mode: 'sshd', reason: 'turned off' };
      return undefined;
    }
    let slot = this.execd.get(conn);
    if (slot) {
      const awaited = slot.service;
      const current = await awaited;
      if (!current || current.alive) return current;
      // Several commands can find the stopped service at once: one restart (and one stop) for all.
      if (slot.service !== awaited) return this.execdFor(conn);
      slot.stops += 1;
      if (slot.stops >= EXECD_RESTARTS) {
        this.execPathNow = {
          mode: 'sshd',
          reason: `the exec service stopped ${slot.stops} times on this connection (something in the guest kills it)`,
        };
        slot.service = Promise.resolve(undefined);
        return undefined;
      }
    } else {
      slot = { service: Promise.resolve(undefined), stops: 0 };
      this.execd.set(conn, slot);
    }
    const started = Execd.start({
      open: (line, setup) => conn.exec(line, setup),
      line: this.opts.execServiceLine,
    }).then(
      (service) => {
        this.execPathNow = { mode: 'execd' };
        return service;
      },
      (err: unknown) => {
        this.execPathNow = { mode: 'sshd', reason: err instanceof Error ? err.message : String(err) };
        return undefined;
      },
    );
    slot.service = started;
    return started;
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
    const line = [...this.running].map(([nonce, { pid }]) => killExecCommand({ nonce, pid })).join('; ');
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
