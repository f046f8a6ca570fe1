import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync, inflateSync } from 'node:zlib';
import { CoworkError } from '../errors.js';

/**
 * Git's loose-object format, written and read by us: `zlib("<type> <size>\0" + body)` at
 * `objects/xx/yyyy…`, named by the SHA-1 of the uncompressed bytes. The bytes stored are exactly
 * the bytes read (no filters, no eol conversion), and `git diff-tree` can still read the store.
 * Objects are never packed (the store's gc.auto is 0), so reading a loose object is enough.
 */
export class ObjectStore {
  readonly #dir: string;

  constructor(gitDir: string) {
    this.#dir = join(gitDir, 'objects');
  }

  write(type: 'blob' | 'tree', body: Buffer): string {
    const header = Buffer.from(`${type} ${body.length}\0`);
    const oid = createHash('sha1').update(header).update(body).digest('hex');
    const folder = join(this.#dir, oid.slice(0, 2));
    const file = join(folder, oid.slice(2));
    if (existsSync(file)) return oid;
    mkdirSync(folder, { recursive: true });
    // Written whole under a temporary name, then renamed: a killed writer leaves no half object.
    const tmp = join(folder, `.tmp-${randomBytes(6).toString('hex')}`);
    writeFileSync(tmp, deflateSync(Buffer.concat([header, body]), { level: 1 }), { mode: 0o444 });
    renameSync(tmp, file);
    return oid;
  }

  read(oid: string): { type: string; body: Buffer } {
    if (!/^[0-9a-f]{40}$/.test(oid)) throw new CoworkError('internal', `not an object id: ${oid}`);
    let raw: Buffer;
    try {
      raw = inflateSync(readFileSync(join(this.#dir, oid.slice(0, 2), oid.slice(2))));
    } catch (err) {
      throw new CoworkError(
        'notFound',
        `checkpoint object ${oid} is missing or damaged in the store: ${(err as Error).message}`,
        err,
      );
    }
    const nul = raw.indexOf(0);
    const [type, size] = raw.subarray(0, nul).toString().split(' ');
    const body = raw.subarray(nul + 1);
    if (Number(size) !== body.length || createHash('sha1').update(raw).digest('hex') !== oid)
      throw new CoworkError('internal', `checkpoint object ${oid} does not match its name`);
    return { type: type ?? '', body };
  }
}
