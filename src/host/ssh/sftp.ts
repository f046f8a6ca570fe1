import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import type { Attributes, SFTPWrapper } from 'ssh2';
import { CoworkError } from '../errors.js';
import type { DirEntry, FileStat } from './types.js';

/** File operations over one SFTP channel. Errors become CoworkErrors naming the guest path. */

export const DEFAULT_READ_MAX_BYTES = 16 * 1024 * 1024;
const READ_CHUNK = 256 * 1024;

// SFTP status codes (draft-ietf-secsh-filexfer-02), as ssh2 reports them in err.code.
const SFTP_NO_SUCH_FILE = 2;
const SFTP_PERMISSION_DENIED = 3;

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

export function fileType(mode: number): FileStat['type'] {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return 'file';
    case S_IFDIR:
      return 'directory';
    case S_IFLNK:
      return 'symlink';
    default:
      return 'other';
  }
}

function sftpError(err: unknown, action: string, path: string): CoworkError {
  if (err instanceof CoworkError) return err;
  const code = (err as { code?: unknown } | undefined)?.code;
  const msg = err instanceof Error ? err.message : String(err);
  if (code === SFTP_NO_SUCH_FILE)
    return new CoworkError(
      'notFound',
      `cannot ${action} ${path} in the guest: no such file or directory`,
      err,
    );
  if (code === SFTP_PERMISSION_DENIED) {
    return new CoworkError(
      'denied',
      `cannot ${action} ${path} in the guest: permission denied (the agent user may not access it)`,
      err,
    );
  }
  return new CoworkError('unavailable', `cannot ${action} ${path} in the guest: ${msg}`, err);
}

function call<T>(
  action: string,
  path: string,
  fn: (cb: (err: Error | undefined | null, value: T) => void) => void,
): Promise<T> {
  return new Promise((resolve, reject) => {
    try {
      fn((err, value) => (err ? reject(sftpError(err, action, path)) : resolve(value)));
    } catch (err) {
      // ssh2 throws synchronously e.g. when the channel is already closed or an extension is missing.
      reject(sftpError(err, action, path));
    }
  });
}

function checkPath(path: string): void {
  if (typeof path !== 'string' || path === '' || path.includes('\0')) {
    throw new CoworkError(
      'invalidArgument',
      `guest path ${JSON.stringify(path)} is not valid; give a non-empty path without NUL bytes`,
    );
  }
}

function toStat(path: string, a: Attributes): FileStat {
  return { path, type: fileType(a.mode), size: a.size, mode: a.mode & 0o7777, mtimeMs: a.mtime * 1000 };
}

export async function sftpStat(sftp: SFTPWrapper, path: string): Promise<FileStat> {
  checkPath(path);
  const attrs = await call<Attributes>('stat', path, (cb) => sftp.lstat(path, cb));
  return toStat(path, attrs);
}

export async function sftpList(sftp: SFTPWrapper, path: string): Promise<DirEntry[]> {
  checkPath(path);
  const entries = await call<{ filename: string; attrs: Attributes }[]>('list', path, (cb) =>
    sftp.readdir(path, cb),
  );
  return entries
    .filter((e) => e.filename !== '.' && e.filename !== '..')
    .map((e) => ({ name: e.filename, type: fileType(e.attrs.mode), size: e.attrs.size }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Reads a whole file, refusing (limitExceeded) files larger than maxBytes — checked up front and while reading. */
export async function sftpReadFile(
  sftp: SFTPWrapper,
  path: string,
  maxBytes = DEFAULT_READ_MAX_BYTES,
): Promise<Buffer> {
  checkPath(path);
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new CoworkError('invalidArgument', `maxBytes must be a non-negative integer, got ${maxBytes}`);
  }
  const tooBig = (size: number) =>
    new CoworkError(
      'limitExceeded',
      `${path} in the guest is ${size} bytes, more than the ${maxBytes}-byte limit; read a part of it instead`,
    );
  const handle = await call<Buffer>('open', path, (cb) => sftp.open(path, 'r', cb));
  try {
    const attrs = await call<Attributes>('stat', path, (cb) => sftp.fstat(handle, cb));
    if (fileType(attrs.mode) === 'directory')
      throw new CoworkError('invalidArgument', `${path} in the guest is a directory, not a file`);
    if (attrs.size > maxBytes) throw tooBig(attrs.size);
    const chunks: Buffer[] = [];
    let total = 0;
    // The file may grow while we read: keep reading to EOF but never past maxBytes + 1.
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, maxBytes + 1 - total));
      const n = await call<number>('read', path, (cb) =>
        sftp.read(handle, buf, 0, buf.length, total, (e, nb) => cb(e, nb)),
      );
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
      if (total > maxBytes) throw tooBig(total);
    }
    return Buffer.concat(chunks, total);
  } finally {
    await call<void>('close', path, (cb) => sftp.close(handle, (e) => cb(e, undefined))).catch(
      () => undefined,
    );
  }
}

/**
 * Writes `data` to a temp file next to `path`, sets the mode, then renames it over `path`
 * (posix-rename, atomic on the guest's file system) so readers never see half a file.
 * Mode: `opts.mode`, else the existing file's mode, else 0644.
 */
export async function sftpWriteFile(
  sftp: SFTPWrapper,
  path: string,
  data: string | Buffer,
  opts: { mode?: number } = {},
): Promise<void> {
  checkPath(path);
  if (opts.mode !== undefined && (!Number.isInteger(opts.mode) || opts.mode < 0 || opts.mode > 0o7777)) {
    throw new CoworkError(
      'invalidArgument',
      `mode must be an integer between 0 and 0o7777, got ${opts.mode}`,
    );
  }
  const existing = await sftpStat(sftp, path).catch((err: CoworkError) => {
    if (err.code === 'notFound') return undefined;
    throw err;
  });
  if (existing?.type === 'directory') {
    throw new CoworkError(
      'invalidArgument',
      `${path} in the guest is a directory; give a file path to write`,
    );
  }
  const mode = opts.mode ?? (existing?.type === 'file' ? existing.mode : 0o644);
  const tmp = posix.join(
    posix.dirname(path),
    `.${posix.basename(path)}.cowork-${randomBytes(6).toString('hex')}.tmp`,
  );
  const body = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  try {
    // Owner-only while being written; the final mode is set just before the rename.
    await call<void>('write', path, (cb) =>
      sftp.writeFile(tmp, body, { mode: 0o600, flag: 'wx' }, (e) => cb(e, undefined)),
    );
    await call<void>('chmod', path, (cb) => sftp.chmod(tmp, mode, (e) => cb(e, undefined)));
    await call<void>('replace', path, (cb) => sftp.ext_openssh_rename(tmp, path, (e) => cb(e, undefined)));
  } catch (err) {
    await call<void>('remove', tmp, (cb) => sftp.unlink(tmp, (e) => cb(e, undefined))).catch(() => undefined);
    throw err;
  }
}
