import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { CoworkError } from '../errors.js';

/**
 * One writer at a time on a checkpoint store, across processes (the controller's task hooks and
 * a `cowork-vm undo` in another terminal): a lock file made with O_EXCL holding the owner's pid.
 * A lock whose pid is gone (a SIGKILLed controller) is taken over.
 */
export async function withStoreLock<T>(file: string, fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (stale(file)) {
        try {
          unlinkSync(file);
        } catch {}
        continue;
      }
      if (Date.now() > deadline)
        throw new CoworkError(
          'timeout',
          `the checkpoint store is busy (lock ${file} held by another process)`,
        );
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    return await fn();
  } finally {
    try {
      unlinkSync(file);
    } catch {}
  }
}

function stale(file: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(file, 'utf8'));
  } catch {
    return false;
  }
  if (!Number.isInteger(pid) || pid <= 0) return true;
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
