import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { PassThrough, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { CoworkError } from '../errors.js';
import type { ImageCache } from './image-cache.js';
import {
  IMAGE_FILES,
  ImageManifest,
  MANIFEST_FILE,
  readManifest,
  verifyFiles,
  writeManifest,
} from './image-manifest.js';
import { hostImageArch, type ImageArch, parseImageArch } from './image-recipe.js';
import {
  BLOCK,
  ChunkReader,
  END_OF_ARCHIVE,
  fileHeader,
  isPlainName,
  padding,
  parseHeader,
} from './image-tar.js';

/**
 * Moving a built image between hosts (build on Linux, run on a Mac): `exportImage` streams the
 * image folder's files into one tar(.gz) with manifest.json FIRST; `importImage` streams it back
 * into a temp folder of the cache, hashing as it writes, and installs it atomically only when
 * every file matches the manifest and the manifest's recipe hash is this checkout's. The
 * archive is untrusted: only plain files listed in the manifest are accepted (image-tar.ts).
 */

export interface ArchiveProgress {
  file: string;
  done: number;
  total: number;
}

export interface ExportOptions {
  arch?: ImageArch | string;
  /** Archive path; a name ending in .tar is written uncompressed, anything else gzip. */
  output?: string;
  cwd?: string;
  onProgress?: (p: ArchiveProgress) => void;
  signal?: AbortSignal;
}

export interface ExportResult {
  file: string;
  bytes: number;
  sha256: string;
  name: string;
  arch: ImageArch;
  recipeHash: string;
}

export interface ImportOptions {
  /** Replace an installed image of the same recipe instead of keeping it. */
  force?: boolean;
  onProgress?: (p: ArchiveProgress) => void;
  signal?: AbortSignal;
}

export interface ImportResult {
  dir: string;
  name: string;
  arch: ImageArch;
  recipeHash: string;
  /** False when an intact image of the same recipe was already installed and kept. */
  installed: boolean;
}

/** The manifest is small; anything bigger is not ours. */
const MAX_MANIFEST_BYTES = 1024 * 1024;

export function archiveName(name: string, arch: ImageArch, recipeHash: string): string {
  return `cowork-vm-image-${name}-${arch}-${recipeHash.slice(0, 12)}.tar.gz`;
}

function buildCommand(name: string, arch: ImageArch): string {
  return `cowork-vm image build ${name}${arch === hostImageArch() ? '' : ` --arch ${arch}`}`;
}

/** The current (name, arch) image's folder and manifest, or a notFound that says how to build it. */
function currentImage(cache: ImageCache, name: string, arch: ImageArch): { dir: string; m: ImageManifest } {
  const dir = cache.imageDir(name, arch);
  const m = readManifest(dir);
  if (m && m.recipeHash === cache.recipeHash(name, arch)) return { dir, m };
  const stale = cache.list().some((i) => i.name === name && i.arch === arch);
  throw new CoworkError(
    'notFound',
    `no current image "${name}" (${arch}) to export${stale ? ' (only builds of an older recipe exist)' : ''} — run: ${buildCommand(name, arch)}`,
  );
}

export async function exportImage(
  cache: ImageCache,
  name: string,
  opts: ExportOptions = {},
): Promise<ExportResult> {
  const arch = parseImageArch(opts.arch ?? hostImageArch());
  const { dir, m } = currentImage(cache, name, arch);
  const file = resolve(opts.cwd ?? process.cwd(), opts.output ?? archiveName(name, arch, m.recipeHash));
  const partial = join(dirname(file), `.${basename(file)}.partial-${randomBytes(4).toString('hex')}`);
  const hash = createHash('sha256');
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  const compress = file.endsWith('.tar') ? new PassThrough() : createGzip();
  try {
    await pipeline(
      Readable.from(archiveChunks(dir, m, opts)),
      compress,
      tap,
      createWriteStream(partial, { flags: 'wx', mode: 0o644 }),
      { signal: opts.signal },
    );
    renameSync(partial, file);
  } catch (err) {
    rmSync(partial, { force: true });
    if (opts.signal?.aborted) throw new CoworkError('cancelled', `export of ${name} (${arch}) was cancelled`);
    throw CoworkError.from(err, 'unavailable', `cannot write ${file}`);
  }
  return { file, bytes, sha256: hash.digest('hex'), name, arch, recipeHash: m.recipeHash };
}

/** manifest.json, then each manifest file, re-hashed as it is read so a corrupted image is not exported. */
async function* archiveChunks(dir: string, m: ImageManifest, opts: ExportOptions): AsyncGenerator<Buffer> {
  const mtime = Date.parse(m.builtAt) / 1000;
  const manifest = Buffer.from(`${JSON.stringify(m, null, 2)}\n`);
  yield fileHeader(MANIFEST_FILE, manifest.length, mtime);
  yield manifest;
  yield padding(manifest.length);
  for (const [file, entry] of Object.entries(m.files)) {
    const path = join(dir, file);
    if (sizeOf(path) !== entry.size) throw corrupted(m, file);
    yield fileHeader(file, entry.size, mtime);
    const h = createHash('sha256');
    let done = 0;
    let lastReport = 0;
    // `end` is inclusive: a file that grew since the manifest is read only up to its recorded size.
    const content = entry.size > 0 ? createReadStream(path, { end: entry.size - 1 }) : [];
    for await (const chunk of content) {
      const b = chunk as Buffer;
      h.update(b);
      done += b.length;
      if (done - lastReport >= 16 * 1024 * 1024 || done === entry.size) {
        lastReport = done;
        opts.onProgress?.({ file, done, total: entry.size });
      }
      yield b;
    }
    if (done !== entry.size || h.digest('hex') !== entry.sha256) throw corrupted(m, file);
    yield padding(entry.size);
  }
  yield END_OF_ARCHIVE;
}

function sizeOf(path: string): number | undefined {
  try {
    return statSync(path).size;
  } catch {
    return undefined;
  }
}

function corrupted(m: ImageManifest, file: string): CoworkError {
  return new CoworkError(
    'unavailable',
    `image "${m.name}" (${m.arch}) is corrupted: ${file} does not match its manifest sha256 — rebuild: ${buildCommand(m.name, m.arch)} --force`,
  );
}

export async function importImage(
  cache: ImageCache,
  archive: string,
  opts: ImportOptions = {},
): Promise<ImportResult> {
  try {
    statSync(archive);
  } catch (err) {
    throw new CoworkError('notFound', `cannot read image archive ${archive}`, err);
  }
  mkdirSync(cache.dir, { recursive: true });
  const tmp = join(cache.dir, `.import-${randomBytes(4).toString('hex')}`);
  mkdirSync(tmp);
  try {
    const m = await extract(cache, archive, tmp, opts);
    const bad = await verifyFiles(tmp, m);
    if (bad.length > 0) throw mismatch(bad[0] as string);
    writeManifest(tmp, m);
    await writeFile(join(tmp, 'kernel-version'), `${m.kernelVersion}\n`);
    const dir = cache.imageDir(m.name, m.arch);
    const result = { dir, name: m.name, arch: m.arch, recipeHash: m.recipeHash };
    if (!opts.force && cache.complete(dir, m.recipeHash)) return { ...result, installed: false };
    cache.install(tmp, dir, m.recipeHash);
    return { ...result, installed: true };
  } catch (err) {
    if (opts.signal?.aborted) throw new CoworkError('cancelled', `import of ${archive} was cancelled`);
    const zlib = (err as NodeJS.ErrnoException)?.code?.startsWith('Z_');
    if (zlib) {
      throw new CoworkError(
        'invalidArgument',
        `${archive} is damaged (gzip: ${(err as Error).message}) — export it again`,
        err,
      );
    }
    throw CoworkError.from(err, 'invalidArgument', `cannot import ${archive}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function mismatch(file: string): CoworkError {
  return new CoworkError(
    'invalidArgument',
    `${file} in the archive does not match the sha256 in its manifest (damaged in transit?) — export it again`,
  );
}

/** gzip by its magic number, else plain tar. */
async function archiveStream(archive: string): Promise<AsyncIterable<Buffer>> {
  const fh = await open(archive, 'r');
  const head = Buffer.alloc(2);
  try {
    await fh.read(head, 0, 2, 0);
  } finally {
    await fh.close();
  }
  const raw = createReadStream(archive);
  if (head[0] !== 0x1f || head[1] !== 0x8b) return raw;
  const gunzip = createGunzip();
  raw.on('error', (err) => gunzip.destroy(err));
  return raw.pipe(gunzip);
}

/** Streams the archive into `tmp`; returns the manifest once every listed file has arrived intact. */
async function extract(
  cache: ImageCache,
  archive: string,
  tmp: string,
  opts: ImportOptions,
): Promise<ImageManifest> {
  const reader = new ChunkReader(await archiveStream(archive));
  try {
    let manifest: ImageManifest | undefined;
    const seen = new Set<string>();
    for (;;) {
      opts.signal?.throwIfAborted();
      const block = await reader.read(BLOCK);
      if (!block)
        throw new CoworkError('invalidArgument', 'the archive is truncated (no end-of-archive marker)');
      const entry = parseHeader(block);
      if (!entry) break;
      if (!manifest) {
        manifest = await readArchiveManifest(cache, reader, entry);
        seen.add(MANIFEST_FILE);
        continue;
      }
      const expected = manifest.files[entry.name];
      if (seen.has(entry.name))
        throw new CoworkError('invalidArgument', `the archive holds ${entry.name} twice`);
      if (!expected) {
        throw new CoworkError(
          'invalidArgument',
          `the archive holds "${entry.name}", which its manifest does not list`,
        );
      }
      if (entry.size !== expected.size) {
        throw new CoworkError(
          'invalidArgument',
          `${entry.name} in the archive is ${entry.size} bytes, its manifest says ${expected.size}`,
        );
      }
      seen.add(entry.name);
      const sha = await writeEntry(reader, join(tmp, entry.name), entry.name, entry.size, opts);
      if (sha !== expected.sha256) throw mismatch(entry.name);
    }
    if (!manifest) throw new CoworkError('invalidArgument', 'the archive is empty');
    const missing = Object.keys(manifest.files).filter((f) => !seen.has(f));
    if (missing.length > 0) {
      throw new CoworkError(
        'invalidArgument',
        `the archive is missing ${missing.join(', ')} that its manifest lists`,
      );
    }
    return manifest;
  } finally {
    await reader.close();
  }
}

/** The first entry MUST be manifest.json of an image this checkout would build with the same recipe. */
async function readArchiveManifest(
  cache: ImageCache,
  reader: ChunkReader,
  entry: { name: string; size: number },
): Promise<ImageManifest> {
  if (entry.name !== MANIFEST_FILE) {
    throw new CoworkError(
      'invalidArgument',
      `not an image archive: its first entry is "${entry.name}", not ${MANIFEST_FILE}`,
    );
  }
  if (entry.size > MAX_MANIFEST_BYTES) {
    throw new CoworkError(
      'invalidArgument',
      `the archive's ${MANIFEST_FILE} is ${entry.size} bytes; not an image manifest`,
    );
  }
  const raw = await reader.read(entry.size + padding(entry.size).length);
  if (!raw) throw new CoworkError('invalidArgument', `the archive is truncated inside ${MANIFEST_FILE}`);
  let parsed: ReturnType<typeof ImageManifest.safeParse>;
  try {
    parsed = ImageManifest.safeParse(JSON.parse(raw.subarray(0, entry.size).toString('utf8')));
  } catch (err) {
    throw new CoworkError('invalidArgument', `the archive's ${MANIFEST_FILE} is not valid JSON`, err);
  }
  if (!parsed.success) {
    throw new CoworkError(
      'invalidArgument',
      `the archive's ${MANIFEST_FILE} is not a valid image manifest`,
      parsed.error,
    );
  }
  const m = parsed.data;
  const badName = Object.keys(m.files).find((f) => !isPlainName(f) || f === MANIFEST_FILE);
  if (badName !== undefined) {
    throw new CoworkError(
      'invalidArgument',
      `the archive's manifest lists "${badName}", which is not an image file name`,
    );
  }
  const absent = IMAGE_FILES.filter((f) => !m.files[f]);
  if (absent.length > 0) {
    throw new CoworkError('invalidArgument', `the archive's manifest does not list ${absent.join(', ')}`);
  }
  checkRecipe(cache, m);
  return m;
}

function checkRecipe(cache: ImageCache, m: ImageManifest): void {
  let ours: string;
  try {
    ours = cache.recipeHash(m.name, m.arch);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new CoworkError('invalidArgument', `the archive holds image "${m.name}" (${m.arch}): ${why}`, err);
  }
  if (ours !== m.recipeHash) {
    throw new CoworkError(
      'invalidArgument',
      `the archive's image "${m.name}" (${m.arch}) was built from recipe ${m.recipeHash.slice(0, 12)}, ` +
        `but this cowork-vm builds ${m.name} from recipe ${ours.slice(0, 12)} — export it from the same cowork-vm version (same checkout) as this one, or build it here: ${buildCommand(m.name, m.arch)}`,
    );
  }
}

/** Writes `size` bytes (plus padding) of the current entry to a new file; returns its sha256. */
async function writeEntry(
  reader: ChunkReader,
  path: string,
  name: string,
  size: number,
  opts: ImportOptions,
): Promise<string> {
  const h = createHash('sha256');
  const fh = await open(path, 'wx', 0o644);
  let done = 0;
  let lastReport = 0;
  try {
    for await (const chunk of reader.take(size, name)) {
      opts.signal?.throwIfAborted();
      h.update(chunk);
      await fh.write(chunk);
      done += chunk.length;
      if (done - lastReport >= 16 * 1024 * 1024 || done === size) {
        lastReport = done;
        opts.onProgress?.({ file: name, done, total: size });
      }
    }
  } finally {
    await fh.close();
  }
  const pad = padding(size).length;
  if (pad > 0 && !(await reader.read(pad))) {
    throw new CoworkError('invalidArgument', `the archive is truncated after ${name}`);
  }
  return h.digest('hex');
}
