import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { PassThrough, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { CoworkError } from '../errors.js';
import type { ImageCache } from './image-cache.js';
import { type ImageManifest, MANIFEST_FILE, readManifest } from './image-manifest.js';
import { hostImageArch, type ImageArch, parseImageArch } from './image-recipe.js';
import { END_OF_ARCHIVE, fileHeader, padding } from './image-tar.js';

/**
 * Moving a built image between hosts (build on Linux, run on a Mac): `exportImage` streams the
 * image folder's files into one tar(.gz) with manifest.json FIRST, re-hashing each file as it
 * goes; `importImage` (image-import.ts) verifies and installs it on the other host.
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

export function archiveName(name: string, arch: ImageArch, recipeHash: string): string {
  return `cowork-vm-image-${name}-${arch}-${recipeHash.slice(0, 12)}.tar.gz`;
}

export function buildCommand(name: string, arch: ImageArch): string {
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
