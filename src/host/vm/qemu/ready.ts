import { CoworkError } from '../../errors.js';
import { type BootSteps, parseBootSteps } from '../boot-steps.js';
import { ConsoleWatcher, consoleTail } from '../console-watch.js';
import type { QemuVmHandle } from './handle.js';

/** The guest's readiness and failure lines (docs/guest-contract.md). */
const READY_RE = /COWORK-READY(?:\s+(\{.*\}))?/;
const FATAL_RE = /COWORK-FATAL\s*(.*)/;

/**
 * Resolves on the guest's COWORK-READY line; rejects on COWORK-FATAL, QEMU exiting, the boot
 * timeout or the abort signal — each with the last console lines so the user sees why. Returns
 * the boot step times the guest printed on its way (COWORK-TIME), when it printed them.
 */
export async function waitForReady(
  handle: QemuVmHandle,
  o: {
    consoleLogPath: string;
    spawnFailure: Promise<Error>;
    timeoutMs: number;
    signal?: AbortSignal;
    onProgress?: (line: string) => void;
    /** The line that counts as ready (default COWORK-READY; a snapshot boot waits for its warm point). */
    readyLine?: RegExp;
  },
): Promise<BootSteps | undefined> {
  const ready = o.readyLine ?? READY_RE;
  let steps: BootSteps | undefined;
  let watcher: ConsoleWatcher | undefined;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const fail = async (code: CoworkError['code'], msg: string, hostNote = ''): Promise<void> => {
        await watcher?.poll();
        const tail = (await consoleTail(o.consoleLogPath, 15)) + hostNote;
        reject(new CoworkError(code, tail ? `${msg}\nlast console lines:\n${tail}` : msg));
      };
      watcher = new ConsoleWatcher(o.consoleLogPath, (line) => {
        o.onProgress?.(line);
        steps = parseBootSteps(line) ?? steps;
        if (ready.test(line)) resolve();
        const fatal = FATAL_RE.exec(line);
        if (fatal) void fail('unavailable', `the guest failed to boot: ${fatal[1] || 'COWORK-FATAL'}`);
      });
      watcher.start();
      void o.spawnFailure.then((err) => reject(CoworkError.from(err, 'unavailable', 'cannot run QEMU')));
      void handle.exited.then(async (info) => {
        await watcher?.poll(); // the ready line may have landed just before the exit
        const how = info.signal ? `signal ${info.signal}` : `code ${info.code}`;
        const hostNote = info.consoleTail.match(/\n\[host\] .*$/)?.[0] ?? '';
        await fail('unavailable', `QEMU exited during boot (${how})`, hostNote);
      });
      timer = setTimeout(
        () => void fail('timeout', `the guest did not report ready within ${o.timeoutMs} ms`),
        o.timeoutMs,
      );
      onAbort = () => void fail('cancelled', 'start was cancelled');
      o.signal?.addEventListener('abort', onAbort, { once: true });
      if (o.signal?.aborted) onAbort(); // aborted while the accelerator probe or virtiofsd ran
    });
  } finally {
    watcher?.stop();
    clearTimeout(timer);
    if (onAbort) o.signal?.removeEventListener('abort', onAbort);
  }
  return steps;
}
