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

export interface TreeEntry {
  /** git's mode: 100644, 100755, 120000 (symlink) or 40000 (tree). */
  mode: string;
  oid: string;
}

/**
 * Writes the trees for a flat path → entry map and returns the root tree's id. Sorting is git's:
 * by name bytes, a tree compared as if its name ended in "/".
 */
export function writeTrees(
  objects: ObjectStore,
  files: Map<string, TreeEntry>,
  known: Map<string, string> = new Map(),
): string {
  interface Dir {
    files: Map<string, TreeEntry>;
    dirs: Map<string, Dir>;
  }
  const root: Dir = { files: new Map(), dirs: new Map() };
  for (const [path, entry] of files) {
    const parts = path.split('/');
    let d = root;
    for (const p of parts.slice(0, -1)) {
      let next = d.dirs.get(p);
      if (!next) {
        next = { files: new Map(), dirs: new Map() };
        d.dirs.set(p, next);
      }
      d = next;
    }
    d.files.set(parts[parts.length - 1] ?? '', entry);
  }
  const write = (d: Dir): string => {
    const rows: { name: string; mode: string; oid: string }[] = [];
    for (const [name, e] of d.files) rows.push({ name, mode: e.mode, oid: e.oid });
    for (const [name, sub] of d.dirs) rows.push({ name, mode: '40000', oid: write(sub) });
    // A folder listed exactly as before has the same tree: only changed folders are hashed.
    const listing = rows.map((r) => `${r.mode} ${r.name}\0${r.oid}`).join('\n');
    const seen = known.get(listing);
    if (seen) return seen;
    const keyed = rows.map((r) => ({ ...r, key: Buffer.from(r.mode === '40000' ? `${r.name}/` : r.name) }));
    keyed.sort((a, b) => Buffer.compare(a.key, b.key));
    const body = Buffer.concat(
      keyed.flatMap((r) => [Buffer.from(`${r.mode} ${r.name}\0`), Buffer.from(r.oid, 'hex')]),
    );
    const oid = objects.write('tree', body);
    if (known.size > 10_000) known.clear(); // a bound on a long-lived controller's memory
    known.set(listing, oid);
    return oid;
  };
  return write(root);
}
