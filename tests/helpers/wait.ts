/**
 * The one way a test waits for something to happen: poll a condition until it holds, and fail
 * with a message that says what never happened (and, through `detail`, what was seen instead).
 * A fixed sleep either wastes time or, on a loaded machine, is too short; waiting for the
 * condition itself is neither.
 */
export interface WaitOptions {
  /** Give up after this long (default 10 s: unit tests have 20 s each). */
  timeoutMs?: number;
  /** Time between two checks (default 10 ms). */
  intervalMs?: number;
  /**
   * Checked after each check that did not hold: a reason string stops the wait at once (a
   * child process that exited, a guest that stopped) instead of spending the whole timeout on
   * a lost cause. The condition is checked first, so what a process did before exiting counts.
   */
  stopIf?: () => string | undefined | false;
  /** Appended to the failure message: the log, the events seen so far. */
  detail?: () => string;
}

/**
 * Resolves with the first truthy value `check` returns (sync or async). A `check` that throws
 * fails the wait with that error: an assertion inside it is not retried.
 */
export async function waitFor<T>(
  check: () => T | undefined | null | false | 0 | '' | Promise<T | undefined | null | false | 0 | ''>,
  what: string,
  opts: WaitOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 10;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    const stopped = opts.stopIf?.();
    if (stopped) {
      // What the process did just before it stopped still counts.
      const last = await check();
      if (last) return last;
      throw new Error(`gave up waiting for ${what}: ${stopped}${suffix(opts)}`);
    }
    if (Date.now() >= deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${suffix(opts)}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

function suffix(opts: WaitOptions): string {
  const d = opts.detail?.();
  return d ? `\n${d}` : '';
}
