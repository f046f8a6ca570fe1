import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { requireProvided } from '../../src/host/host-requirements.js';

/**
 * A command in a real pseudo-terminal: util-linux `script` allocates the pty, runs the command
 * as its session's foreground job and copies our writes to the pty master — so `type('\x03')`
 * is a Ctrl-C typed at a terminal (the line discipline, or a raw-mode reader, sees the byte),
 * never a signal sent by the test.
 */
export class PtySession {
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly #child: ChildProcessWithoutNullStreams;
  #waiters: { re: RegExp; resolve: () => void }[] = [];

  constructor(command: string, env: NodeJS.ProcessEnv) {
    const script = requireProvided('script');
    // -q quiet, -f flush each write, -e exit with the command's status, -c the command; no log file.
    this.#child = spawn(script, ['-qfec', command, '/dev/null'], { env, stdio: 'pipe' });
    const onData = (d: Buffer) => {
      this.output += d.toString('utf8');
      this.#waiters = this.#waiters.filter((w) => {
        if (!w.re.test(this.output)) return true;
        w.resolve();
        return false;
      });
    };
    this.#child.stdout.on('data', onData);
    this.#child.stderr.on('data', onData);
    this.exited = new Promise((resolve) =>
      this.#child.once('exit', (code, signal) => resolve({ code, signal })),
    );
  }

  /** Resolves when the terminal has shown text matching `re`. */
  waitFor(re: RegExp, timeoutMs: number): Promise<void> {
    if (re.test(this.output)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no ${re} on the terminal within ${timeoutMs} ms; it shows:\n${this.output}`)),
        timeoutMs,
      );
      this.#waiters.push({
        re,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  /** Types bytes at the terminal, e.g. '\x03' for Ctrl-C. */
  type(bytes: string): void {
    this.#child.stdin.write(bytes);
  }

  kill(): void {
    this.#child.kill('SIGKILL');
  }
}
