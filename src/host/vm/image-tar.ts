import { CoworkError } from '../errors.js';

/**
 * The small POSIX ustar dialect image archives use: flat regular files with plain names, sizes
 * in octal (< 8 GiB), nothing else. Writing builds 512-byte headers; reading is a streaming
 * parser that refuses every entry type and name form it does not support, because an archive
 * from elsewhere is untrusted input (no paths, links, devices, pax or GNU extensions).
 */

export const BLOCK = 512;
/** The largest size an 11-digit octal field holds (8 GiB - 1). */
export const MAX_ENTRY_SIZE = 8 * 1024 ** 3 - 1;
/** A plain file name: no '/', no leading '.', so neither '..' nor hidden files. */
const PLAIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

const TYPE_NAMES: Record<string, string> = {
  '1': 'a hard link',
  '2': 'a symbolic link',
  '3': 'a character device',
  '4': 'a block device',
  '5': 'a directory',
  '6': 'a FIFO',
  '7': 'a contiguous file',
  x: 'a pax extended header',
  g: 'a pax global header',
  L: 'a GNU long-name entry',
  K: 'a GNU long-link entry',
  S: 'a GNU sparse file',
};

export function isPlainName(name: string): boolean {
  return PLAIN_NAME.test(name);
}

function octal(buf: Buffer, offset: number, width: number, value: number): void {
  buf.write(`${value.toString(8).padStart(width - 1, '0')}\0`, offset, width, 'ascii');
}

/** The header of a regular file `name` of `size` bytes. */
export function fileHeader(name: string, size: number, mtimeSec: number, mode = 0o644): Buffer {
  if (!isPlainName(name)) throw new CoworkError('internal', `"${name}" is not a plain file name`);
  if (!Number.isInteger(size) || size < 0 || size > MAX_ENTRY_SIZE) {
    throw new CoworkError('unsupported', `${name} is ${size} bytes; image archives hold files < 8 GiB`);
  }
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'ascii');
  octal(h, 100, 8, mode);
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  octal(h, 124, 12, size);
  octal(h, 136, 12, Math.max(0, Math.floor(mtimeSec)));
  h.write('0', 156, 1, 'ascii');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.write('root', 265, 32, 'ascii');
  h.write('root', 297, 32, 'ascii');
  writeChecksum(h);
  return h;
}

export function writeChecksum(h: Buffer): void {
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
}

/** Zero bytes that pad `size` bytes of content to a whole block. */
export function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

function field(h: Buffer, offset: number, width: number): string {
  const raw = h.subarray(offset, offset + width);
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul < 0 ? width : nul).toString('latin1');
}

function parseOctal(h: Buffer, offset: number, width: number, what: string): number {
  const text = field(h, offset, width).trim();
  if (!/^[0-7]{1,12}$/.test(text)) {
    throw new CoworkError('invalidArgument', `the archive's ${what} field "${text}" is not an octal number`);
  }
  return Number.parseInt(text, 8);
}

export interface TarEntry {
  name: string;
  size: number;
}

/**
 * Parses one header block. Returns undefined for the zero block that ends an archive; throws a
 * CoworkError naming the entry for anything but a regular file with a plain name.
 */
export function parseHeader(h: Buffer): TarEntry | undefined {
  if (h.every((b) => b === 0)) return undefined;
  const stored = parseOctal(h, 148, 8, 'header checksum');
  const copy = Buffer.from(h);
  copy.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of copy) sum += b;
  if (sum !== stored) {
    throw new CoworkError('invalidArgument', 'not an image archive: a tar header checksum does not match');
  }
  const magic = h.subarray(257, 263).toString('latin1');
  if (magic !== 'ustar\0' && magic !== 'ustar ') {
    throw new CoworkError('invalidArgument', 'not an image archive: a tar header is not in ustar format');
  }
  const prefix = field(h, 345, 155);
  const name = prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100);
  const type = String.fromCharCode(h[156] ?? 0);
  if (type !== '0' && type !== '\0') {
    const what = TYPE_NAMES[type] ?? `of unknown type "${type}"`;
    throw new CoworkError(
      'invalidArgument',
      `archive entry "${name}" is ${what}; image archives hold only plain files`,
    );
  }
  if (!isPlainName(name)) {
    throw new CoworkError(
      'invalidArgument',
      `archive entry "${name}" is not a plain file name (no folders, "..", absolute paths or hidden files)`,
    );
  }
  return { name, size: parseOctal(h, 124, 12, `size of "${name}"`) };
}

/**
 * Reads exact byte counts from an async stream of chunks without holding more than one chunk
 * beyond what was asked for.
 */
export class ChunkReader {
  private pending: Buffer[] = [];
  private length = 0;
  private readonly it: AsyncIterator<Buffer>;

  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async pull(): Promise<boolean> {
    const r = await this.it.next();
    if (r.done) return false;
    const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    this.pending.push(chunk);
    this.length += chunk.length;
    return true;
  }

  /** Exactly n bytes, or undefined when the stream ends first. */
  async read(n: number): Promise<Buffer | undefined> {
    while (this.length < n) if (!(await this.pull())) return undefined;
    const all = Buffer.concat(this.pending);
    this.pending = all.length > n ? [all.subarray(n)] : [];
    this.length = all.length - n;
    return all.subarray(0, n);
  }

  /** n bytes as a sequence of chunks; throws when the stream ends first. */
  async *take(n: number, what: string): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.pending.length === 0 && !(await this.pull())) {
        throw new CoworkError('invalidArgument', `the archive is truncated inside ${what}`);
      }
      const head = this.pending.shift() as Buffer;
      this.length -= head.length;
      if (head.length > left) {
        this.pending.unshift(head.subarray(left));
        this.length += head.length - left;
        yield head.subarray(0, left);
        left = 0;
      } else {
        left -= head.length;
        yield head;
      }
    }
  }

  async close(): Promise<void> {
    await this.it.return?.();
  }
}
