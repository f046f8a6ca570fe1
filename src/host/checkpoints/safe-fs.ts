import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  existsSync,
  fchmodSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readlinkSync,
  readSync,
  renameSync,
  rmSync,
  type Stats,
  symlinkSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { CoworkError } from '../errors.js';

/**
 * Host-side file access inside a workspace the guest can change at any moment. Nothing here
 * follows a symbolic link: not the last component (O_NOFOLLOW) and not a folder on the way
 * (on Linux every step is taken relative to an open folder through /proc/self/fd, like openat;
 * a folder swapped for a link fails with ELOOP/ENOTDIR). Reads also check where the opened file
 * really is. Elsewhere (macOS) each folder on the way is lstat'ed first: a race with the guest
 * is possible there, stated in docs/architecture.md.
 */
const PROC_FD = existsSync('/proc/self/fd');
const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY, O_WRONLY, O_CREAT, O_EXCL } = constants;

/** Reads a regular file's bytes, or undefined when it is not a regular file any more. */
export function readNoFollow(workspaceReal: string, rel: string, maxBytes: number): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(join(workspaceReal, rel), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > maxBytes) return undefined;
    if (PROC_FD) {
      const real = readlinkSync(`/proc/self/fd/${fd}`);
      if (real !== join(workspaceReal, rel)) return undefined;
    }
    const buf = Buffer.allocUnsafe(st.size);
    let off = 0;
    while (off < st.size) {
      const n = readSync(fd, buf, off, st.size - off, off);
      if (n === 0) break;
      off += n;
    }
    return off === st.size ? buf : buf.subarray(0, off);
  } finally {
    closeSync(fd);
  }
}

/**
 * An open folder of the workspace reached without following links; paths of its entries go
 * through `entry(name)`. Close it when done.
 */
export class SafeDir {
  private constructor(
    private readonly fd: number | undefined,
    private readonly path: string,
  ) {}

  /**
   * Opens `rel`'s folder chain from the workspace root. With `create`, missing folders are made
   * (mode 0755); a non-folder in the way is an error (the caller removes it first when it may).
   */
  static open(workspaceReal: string, relDir: string, create: boolean): SafeDir {
    const parts = relDir ? relDir.split('/') : [];
    if (!PROC_FD) {
      let p = workspaceReal;
      for (const part of parts) {
        p = join(p, part);
        const st = lstatOrUndefined(p);
        if (!st && create) mkdirSync(p, { mode: 0o755 });
        else if (!st?.isDirectory()) throw notFolder(relDir, part);
      }
      return new SafeDir(undefined, p);
    }
    let fd = openSync(workspaceReal, O_RDONLY | O_DIRECTORY);
    try {
      for (const part of parts) {
        const next = `/proc/self/fd/${fd}/${part}`;
        let nfd: number;
        try {
          nfd = openSync(next, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT' && create) {
            mkdirSync(next, { mode: 0o755 });
            nfd = openSync(next, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
          } else throw notFolder(relDir, part, err);
        }
        closeSync(fd);
        fd = nfd;
      }
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    return new SafeDir(fd, `/proc/self/fd/${fd}`);
  }

  entry(name: string): string {
    if (!name || name.includes('/') || name === '.' || name === '..')
      throw new CoworkError('internal', `not a file name: ${name}`);
    return `${this.path}/${name}`;
  }

  lstat(name: string): Stats | undefined {
    return lstatOrUndefined(this.entry(name));
  }

  /** Removes whatever is at `name` (a folder with all it holds; links themselves, never their targets). */
  remove(name: string): void {
    const st = this.lstat(name);
    if (!st) return;
    if (st.isDirectory()) rmSync(this.entry(name), { recursive: true, force: true });
    else unlinkSync(this.entry(name));
  }

  /** Replaces `name` with a regular file of exactly these bytes and permission bits. */
  writeFile(name: string, data: Buffer, mode: number): void {
    const tmp = this.entry(`.cowork-undo-${randomBytes(6).toString('hex')}`);
    const fd = openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    try {
      let off = 0;
      while (off < data.length) off += writeSync(fd, data, off, data.length - off);
      fchmodSync(fd, mode & 0o7777);
    } finally {
      closeSync(fd);
    }
    this.replace(tmp, name);
  }

  /** Replaces `name` with a symbolic link to `target` (the link is made, never followed). */
  writeLink(name: string, target: string): void {
    const tmp = this.entry(`.cowork-undo-${randomBytes(6).toString('hex')}`);
    symlinkSync(target, tmp);
    this.replace(tmp, name);
  }

  private replace(tmp: string, name: string): void {
    try {
      // rename replaces a file or a link in place; a folder in the way goes first.
      if (this.lstat(name)?.isDirectory()) this.remove(name);
      renameSync(tmp, this.entry(name));
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
  }
}

function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

function notFolder(relDir: string, part: string, cause?: unknown): CoworkError {
  return new CoworkError(
    'invalidState',
    `${relDir}: "${part}" on the way is not a folder (a file or a symbolic link) — it is never followed`,
    cause,
  );
}
