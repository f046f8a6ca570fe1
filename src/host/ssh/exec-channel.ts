import type { ClientChannel } from 'ssh2';
import { CoworkError } from '../errors.js';
import { wrapCommand } from './command.js';
import { CappedOutput, PidMarkerFilter } from './output.js';
import type { ExecOptions, ExecResult } from './types.js';

/** What one exec needs from the session: a way to open the channel and to kill a process group. */
export interface ExecTransport {
  /**
   * Opens an exec channel running `line` through the login shell. `setup` MUST be called
   * synchronously in ssh2's callback: the exit status and close can arrive in the same read
   * as the exec confirmation, and an 'exit' emitted before a listener exists is lost.
   */
  open(line: string, setup: (ch: ClientChannel) => void): Promise<ClientChannel>;
  /** Kills what the exec started (its group/session when `pid` is known, and every process tagged with `nonce`). */
  kill(target: { pid?: number; nonce: string }): Promise<void>;
  /** Registers a callback run if the connection drops; returns an unregister function. */
  onLost(fail: (err: CoworkError) => void): () => void;
}

export interface ExecSettings {
  /** Random lowercase hex naming this exec: the pid line's key and the env tag of its processes. */
  nonce: string;
  cwd: string;
  shell?: string;
  maxOutputBytes: number;
  /** After a kill, how long to wait for the channel to close before closing it from our side. */
  killGraceMs: number;
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
  const { nonce } = settings;
  const line = wrapCommand(command, { cwd: settings.cwd, env: opts.env, nonce, shell: settings.shell });
  return new Promise<ExecResult>((resolve, reject) => {
    const stdout = new CappedOutput(settings.maxOutputBytes, opts.onStdout);
    const stderr = new CappedOutput(settings.maxOutputBytes, opts.onStderr);
    const marker = new PidMarkerFilter(nonce);
    let channel: ClientChannel | undefined;
    let exit: { code: number | null; signal: string | null } | undefined;
    let stopping: StopReason | undefined;
    let killSent = false;
    let settled = false;
    let pendingCloses = 2; // the channel and its stderr stream
    const timers: NodeJS.Timeout[] = [];

    const cleanup = () => {
      for (const t of timers) clearTimeout(t);
      opts.signal?.removeEventListener('abort', onAbort);
      unregister();
    };
    const fail = (err: CoworkError) => {
      if (settled) return;
      settled = true;
      cleanup();
      reject(err);
    };
    const unregister = transport.onLost(fail);

    const sendKill = () => {
      killSent = true;
      // A failed kill (e.g. the connection dropped) surfaces through close / connection loss.
      void transport.kill({ pid: marker.pid, nonce }).catch(() => undefined);
    };
    const kill = () => {
      if (killSent || !stopping || !channel) return;
      // Without the pid line yet, wait for it (stderr's handler calls kill() again) unless the
      // filter gave up on it; the tag in the environment still finds the processes then.
      if (marker.pid !== undefined || marker.done) sendKill();
    };
    const stop = (why: StopReason) => {
      if (stopping || settled) return;
      stopping = why;
      kill();
      // Whatever happens to the kill, do not wait forever for the guest to confirm it.
      timers.push(
        setTimeout(() => {
          if (!killSent && channel) sendKill();
          channel?.close();
        }, settings.killGraceMs),
      );
    };
    const onAbort = () => stop('abort');

    const finish = () => {
      if (settled || --pendingCloses > 0) return;
      const rest = marker.flush();
      if (rest.length) stderr.push(rest);
      if (!exit && !stopping) {
        fail(
          new CoworkError(
            'unavailable',
            'connection to the guest lost before the command reported its exit status; it may or may not have run to the end',
          ),
        );
        return;
      }
      settled = true;
      cleanup();
      if (stopping === 'abort') {
        reject(
          new CoworkError('cancelled', 'the command was cancelled; its processes in the guest were killed'),
        );
        return;
      }
      resolve({
        exitCode: exit?.code ?? null,
        signal: exit?.signal ?? (stopping ? 'KILL' : null),
        stdout: stdout.text(),
        stderr: stderr.text(),
        truncated: stdout.truncated || stderr.truncated,
        durationMs: Math.round(performance.now() - startedAt),
        timedOut: stopping === 'timeout',
      });
    };

    if (opts.signal) {
      if (opts.signal.aborted) {
        fail(new CoworkError('cancelled', 'the command was cancelled before it started'));
        return;
      }
      opts.signal.addEventListener('abort', onAbort, { once: true });
    }

    const setup = (ch: ClientChannel) => {
      channel = ch;
      ch.on('data', (d: Buffer) => stdout.push(d));
      ch.stderr.on('data', (d: Buffer) => {
        const out = marker.push(d);
        if (out.length) stderr.push(out);
        if (stopping && !killSent) kill();
      });
      ch.on('exit', (code: number | null, signal?: string) => {
        exit = { code: code ?? null, signal: signal ? signal.replace(/^SIG/, '') : null };
      });
      ch.on('close', finish);
      ch.stderr.on('close', finish);
      ch.on('error', () => undefined); // surfaced through 'close' / connection loss
      if (settled) {
        ch.close(); // the connection was lost or the caller gave up while the channel opened
        return;
      }
      sendStdin(ch, opts.stdin);
      if (opts.timeoutMs !== undefined) timers.push(setTimeout(() => stop('timeout'), opts.timeoutMs));
      if (stopping) kill();
    };
    transport
      .open(line, setup)
      .catch((err: unknown) =>
        fail(CoworkError.from(err, 'unavailable', 'could not start the command in the guest')),
      );
  });
}

/**
 * Sends stdin, then EOF, WITHOUT ending the Writable side. ch.end() would let Node's
 * autoDestroy call ssh2's Channel.destroy() as soon as the guest's EOF arrives, which sends
 * CHANNEL_CLOSE before sshd has reported the exit status — the status is then lost (seen
 * here in ~1% of execs). ssh2 ends the Writable itself when the server closes the channel.
 */
function sendStdin(ch: ClientChannel, stdin: string | Buffer | undefined): void {
  if (stdin === undefined || stdin.length === 0) {
    ch.eof();
    return;
  }
  ch.write(stdin, () => ch.eof());
}
