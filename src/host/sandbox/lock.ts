import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { CoworkError } from '../errors.js';

export interface LockInfo {
  pid: number;
  workspace: string;
  startedAt: string;
}

/** True when a process with this pid exists (EPERM means it exists but is someone else's). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function readLock(file: string): LockInfo | undefined {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as LockInfo;
    return typeof parsed.pid === 'number' ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One sandbox per workspace: an O_EXCL lock file holding the controller's pid. A lock whose
 * process is gone (crash, SIGKILL) is stale and is cleared; a live one is a clear error.
 */
export class SandboxLock {
  private constructor(
    readonly file: string,
    readonly info: LockInfo,
  ) {}

  static acquire(
    file: string,
    workspace: string,
    isAlive: (pid: number) => boolean = processAlive,
  ): SandboxLock {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    const info: LockInfo = { pid: process.pid, workspace, startedAt: new Date().toISOString() };
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(file, 'wx', 0o600);
        writeSync(fd, JSON.stringify(info));
        closeSync(fd);
        return new SandboxLock(file, info);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new CoworkError('unavailable', `cannot create lock ${file}: ${(err as Error).message}`, err);
        }
        const holder = readLock(file);
        if (holder && isAlive(holder.pid)) {
          throw new CoworkError(
            'invalidState',
            `a sandbox is already running for ${workspace} (pid ${holder.pid}) — use \`cowork-vm status\` or \`cowork-vm stop\``,
          );
        }
        // Stale (dead holder or unreadable): clear it and retry once.
        try {
          unlinkSync(file);
        } catch {
          /* raced with another cleaner: retry decides */
        }
      }
    }
    throw new CoworkError(
      'invalidState',
      `could not take the sandbox lock ${file} — another start is racing; retry`,
    );
  }

  release(): void {
    const holder = readLock(this.file);
    if (holder && holder.pid === this.info.pid) {
      try {
        unlinkSync(this.file);
      } catch {
        /* already gone */
      }
    }
  }
}
