import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Kills QEMU/virtiofsd processes a previous host process left behind in `runDir` (it was
 * SIGKILLed before it could stop them and setpriv was unavailable). A pid is only killed when
 * /proc says it is still that program, so a recycled pid is never hit. Returns the killed pids.
 */
export async function cleanupStrays(runDir: string): Promise<number[]> {
  const killed: number[] = [];
  // QEMU's command line names runDir (console log), so another sandbox's QEMU is never hit.
  for (const [file, needles] of [
    ['qemu.pid', ['qemu-system', runDir]],
    ['virtiofsd.pid', ['virtiofsd']],
    ['virtiofsd-seed.pid', ['virtiofsd']],
  ] as const) {
    const pidPath = join(runDir, file);
    const pid = Number.parseInt(await readFile(pidPath, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(pid) && pid > 1 && (await isOurProcess(pid, needles))) {
      try {
        process.kill(pid, 'SIGKILL');
        killed.push(pid);
      } catch {
        // already gone
      }
    }
    await rm(pidPath, { force: true });
  }
  return killed;
}

async function isOurProcess(pid: number, needles: readonly string[]): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined);
  if (cmdline === undefined) {
    // No /proc (macOS): trust the pid file only if the process exists at all.
    if (process.platform === 'linux') return false;
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }
  const args = cmdline.split('\0');
  return needles.every((n) => args.some((arg) => arg.includes(n)));
}
