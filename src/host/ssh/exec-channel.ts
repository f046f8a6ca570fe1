import { CoworkError } from '../errors.js';
import type { ExecChannel } from './execd.js';
import { CappedOutput, PidMarkerFilter } from './output.js';
import type { ExecOptions, ExecResult } from './types.js';

/** What one exec needs from the session: a way to open the channel and to kill a process group. */
export interface ExecTransport {
  /**
   * Starts `req.command` in `req.cwd` with `req.env` and the exec tag `req.nonce`: on its own sshd
   * session (command.ts wrapCommand) or on the exec service (execd.ts). `setup` MUST be called
   * synchronously in ssh2's callback: the exit status and close can arrive in the same read
   * as the exec confirmation, and an 'exit' emitted before a listener exists is lost.
   */
  open(req: ExecRequest, setup: (ch: ExecChannel) => void): Promise<ExecChannel>;
  /** Kills what the exec started (its group/session when `pid` is known, and every process tagged with `nonce`). */
  kill(target: { pid?: number; nonce: string }): Promise<void>;
  /** Registers a callback run if the connection drops; returns an unregister function. */
  onLost(fail: (err: CoworkError) => void): () => void;
}

/** One command as the transport starts it. */
export interface ExecRequest {
  command: string;
  cwd: string;
  env?: Record<string, string>;
  nonce: string;
  shell?: string;
}

export interface ExecSettings {
  /** Random lowercase hex naming this exec: the pid line's key and the env tag of its processes. */
  nonce: string;
  cwd: string;
  shell?: string;
  maxOutputBytes: number;
  /** After a kill, how long to wait for the channel to close before closing it from our side. */
  killGraceMs: number;
  /** Told the command's guest pid (its process group and session) once it is known. */
  onPid?: (pid: number) => void;
}

type StopReason = 'timeout' | 'abort';

/**
 * Runs one command on its own channel and settles exactly once:
 * resolves on exit (or, after a timeout, once the process group is killed, with timedOut);
 * rejects 'cancelled' after an abort killed it, 'unavailable' if the connection drops.
 */
export function runExecChannel(
  transport: ExecTransport,
  command: string,
  opts: ExecOptions,
  settings: ExecSettings,
  startedAt: number,
): Promise<ExecResult> {
  return new ExecRun(transport, opts, settings, startedAt).run(command);
}

/**
 * One exec's state machine. The steps: `run` opens the channel, `attach` wires it (in ssh2's
 * callback, see ExecTransport.open), `stop` starts a timeout or abort, `kill` sends the kill once
 * the guest pid is known, `closed` counts the channel's two closes and `conclude` turns the
 * outcome into a result or an error. `settled` guards every way out, so it settles once.
 */
class ExecRun {
  private readonly stdout: CappedOutput;
  private readonly stderr: CappedOutput;
  private readonly marker: PidMarkerFilter;
  private channel: ExecChannel | undefined;
  private exit: { code: number | null; signal: string | null } | undefined;
  private stopping: StopReason | undefined;
  private killSent = false;
  private settled = false;
  private pendingCloses = 2; // the channel and its stderr stream
  private readonly timers: NodeJS.Timeout[] = [];
  private unregister: () => void = () => {};
  private resolve: (r: ExecResult) => void = () => {};
  private reject: (e: CoworkError) => void = () => {};
  private readonly onAbort = () => this.stop('abort');

  constructor(
    private readonly transport: ExecTransport,
    private readonly opts: ExecOptions,
    private readonly settings: ExecSettings,
    private readonly startedAt: number,
  ) {
    const all = opts.streamPastCap === true;
    this.stdout = new CappedOutput(settings.maxOutputBytes, opts.onStdout, all);
    this.stderr = new CappedOutput(settings.maxOutputBytes, opts.onStderr, all);
    this.marker = new PidMarkerFilter(settings.nonce);
  }

  run(command: string): Promise<ExecResult> {
    const { cwd, nonce, shell } = this.settings;
    const req: ExecRequest = { command, cwd, env: this.opts.env, nonce, shell };
    return new Promise<ExecResult>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      this.unregister = this.transport.onLost((err) => this.fail(err));
      const signal = this.opts.signal;
      if (signal) {
        if (signal.aborted) {
          this.fail(new CoworkError('cancelled', 'the command was cancelled before it started'));
          return;
        }
        signal.addEventListener('abort', this.onAbort, { once: true });
      }
      this.transport
        .open(req, (ch) => this.attach(ch))
        .catch((err: unknown) =>
          this.fail(CoworkError.from(err, 'unavailable', 'could not start the command in the guest')),
        );
    });
  }

  /** Wires the channel's output, exit status and closes; then stdin, the timeout, a pending stop. */
  private attach(ch: ExecChannel): void {
    this.channel = ch;
    ch.on('data', (d: Buffer) => this.stdout.push(d));
    ch.stderr.on('data', (d: Buffer) => {
      const known = this.marker.pid !== undefined;
      const out = this.marker.push(d);
      if (!known && this.marker.pid !== undefined) this.settings.onPid?.(this.marker.pid);
      if (out.length) this.stderr.push(out);
      if (this.stopping && !this.killSent) this.kill();
    });
    ch.on('exit', (code: number | null, signal?: string) => {
      this.exit = { code: code ?? null, signal: signal ? signal.replace(/^SIG/, '') : null };
    });
    ch.on('close', () => this.closed());
    ch.stderr.on('close', () => this.closed());
    ch.on('error', () => undefined); // surfaced through 'close' / connection loss
    if (this.settled) {
      ch.close(); // the connection was lost or the caller gave up while the channel opened
      return;
    }
    sendStdin(ch, this.opts.stdin);
    if (this.opts.timeoutMs !== undefined)
      this.timers.push(setTimeout(() => this.stop('timeout'), this.opts.timeoutMs));
    if (this.stopping) this.kill();
  }

  private stop(why: StopReason): void {
    if (this.stopping || this.settled) return;
    this.stopping = why;
    this.kill();
    // Whatever happens to the kill, do not wait forever for the guest to confirm it.
    this.timers.push(
      setTimeout(() => {
        if (!this.killSent && this.channel) this.sendKill();
        this.channel?.close();
      }, this.settings.killGraceMs),
    );
  }

  private kill(): void {
    if (this.killSent || !this.stopping || !this.channel) return;
    // Without the pid line yet, wait for it (stderr's handler calls kill() again) unless the
    // filter gave up on it; the tag in the environment still finds the processes then.
    if (this.marker.pid !== undefined || this.marker.done) this.sendKill();
  }

  private sendKill(): void {
    this.killSent = true;
    // A failed kill (e.g. the connection dropped) surfaces through close / connection loss.
    void this.transport.kill({ pid: this.marker.pid, nonce: this.settings.nonce }).catch(() => undefined);
  }

  /** Both the channel and its stderr stream have to close before the output is complete. */
  private closed(): void {
    if (this.settled || --this.pendingCloses > 0) return;
    const rest = this.marker.flush();
    if (rest.length) this.stderr.push(rest);
    this.conclude();
  }

  private conclude(): void {
    if (!this.exit && !this.stopping) {
      this.fail(
        new CoworkError(
          'unavailable',
          'connection to the guest lost before the command reported its exit status; it may or may not have run to the end',
        ),
      );
      return;
    }
    if (this.stopping === 'abort') {
      this.fail(
        new CoworkError('cancelled', 'the command was cancelled; its processes in the guest were killed'),
      );
      return;
    }
    this.settle();
    this.resolve({
      exitCode: this.exit?.code ?? null,
      signal: this.exit?.signal ?? (this.stopping ? 'KILL' : null),
      stdout: this.stdout.text(),
      stderr: this.stderr.text(),
      truncated: this.stdout.truncated || this.stderr.truncated,
      durationMs: Math.round(performance.now() - this.startedAt),
      timedOut: this.stopping === 'timeout',
    });
  }

  private fail(err: CoworkError): void {
    if (this.settled) return;
    this.settle();
    this.reject(err);
  }

  private settle(): void {
    this.settled = true;
    for (const t of this.timers) clearTimeout(t);
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    this.unregister();
  }
}

/**
 * Sends stdin, then EOF, WITHOUT ending the Writable side. ch.end() would let Node's
 * autoDestroy call ssh2's Channel.destroy() as soon as the guest's EOF arrives, which sends
 * CHANNEL_CLOSE before sshd has reported the exit status — the status is then lost (seen
 * here in ~1% of execs). ssh2 ends the Writable itself when the server closes the channel.
 */
function sendStdin(ch: ExecChannel, stdin: string | Buffer | undefined): void {
  if (stdin === undefined || stdin.length === 0) {
    ch.eof();
    return;
  }
  ch.write(stdin, () => ch.eof());
}
