import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { CoworkError } from '../errors.js';
import { type ArchiveProgress, buildCommand } from './image-archive.js';
import type { ImageCache } from './image-cache.js';
import {
  IMAGE_FILES,
  ImageManifest,
  MANIFEST_FILE,
  OPTIONAL_IMAGE_FILES,
  verifyFiles,
  writeManifest,
} from './image-manifest.js';
import type { ImageArch } from './image-recipe.js';
import { BLOCK, ChunkReader, isPlainName, padding, parseHeader } from './image-tar.js';

/**
 * Installing an image archive from `image export` (image-archive.ts), which is untrusted input:
 * streamed into a temp folder of the cache, hashing as it writes; only plain files the manifest
 * lists are accepted (image-tar.ts refuses paths, links, devices, pax/GNU entries); manifest.json
 * must come first and carry the recipe hash this checkout builds, so a foreign image is refused
 * before its rootfs is read. Installed by one rename; a failure of any kind leaves nothing.
 */

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
  sweepAbandoned(cache.dir);
  const tmp = join(cache.dir, `.import-${process.pid}-${randomBytes(4).toString('hex')}`);
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

/**
 * Removes the temp folders of imports whose process is gone (killed mid-import: the `finally`
 * never ran). A folder of a live process, this one included, is another import in progress.
 */
function sweepAbandoned(dir: string): void {
  for (const entry of readdirSync(dir)) {
    const pid = Number(/^\.import-(\d+)-[0-9a-f]{8}$/.exec(entry)?.[1]);
    if (!pid || alive(pid)) continue;
    rmSync(join(dir, entry), { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
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
      const expected = Object.hasOwn(manifest.files, entry.name) ? manifest.files[entry.name] : undefined;
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
  // Exactly the files a build writes: nothing the importer would not know how to treat.
  const known: readonly string[] = [...IMAGE_FILES, ...OPTIONAL_IMAGE_FILES];
  const badName = Object.keys(m.files).find((f) => !isPlainName(f) || !known.includes(f));
  if (badName !== undefined) {
    throw new CoworkError(
      'invalidArgument',
      `the archive's manifest lists "${badName}", which is not an image file (${known.join(', ')})`,
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
