import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { CoworkError } from '../errors.js';

/** manifest.json of a built image: what it is, what is in it, and the checksum of each file. */

export const IMAGE_FILES = ['rootfs.ext4', 'vmlinuz', 'initrd.img', 'modules.list', 'packages.tsv'] as const;
/**
 * Files a build writes only for some images: `vmlinux` (amd64) is the kernel uncompressed, an ELF
 * with a PVH entry that QEMU boots without the bzImage's decompressor (~2.6 s under TCG).
 */
export const OPTIONAL_IMAGE_FILES = ['vmlinux'] as const;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

export const ImageFileEntry = z.strictObject({ size: z.number().int().nonnegative(), sha256: sha256Hex });

export const ImageManifest = z.strictObject({
  schema: z.literal(1),
  name: z.string().min(1),
  arch: z.enum(['amd64', 'arm64']),
  suite: z.string().min(1),
  recipeHash: sha256Hex,
  builtAt: z.iso.datetime(),
  kernelVersion: z.string().min(1),
  packages: z.record(z.string(), z.string()),
  files: z.record(z.string(), ImageFileEntry),
  stages: z.array(z.strictObject({ name: z.string(), seconds: z.number().nonnegative() })),
  totalSeconds: z.number().nonnegative(),
});
export type ImageManifest = z.infer<typeof ImageManifest>;

export const MANIFEST_FILE = 'manifest.json';
/** Remembers files already verified, keyed by (size, mtime, ctime, inode): a changed file is hashed again. */
const STAMP_FILE = '.verified.json';

const Stamp = z.record(
  z.string(),
  z.strictObject({
    size: z.number(),
    mtimeMs: z.number(),
    ctimeMs: z.number(),
    ino: z.number(),
    sha256: sha256Hex,
  }),
);
type Stamp = z.infer<typeof Stamp>;

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Reads and validates manifest.json; undefined when absent, CoworkError when unreadable/invalid. */
export function readManifest(dir: string): ImageManifest | undefined {
  let text: string;
  try {
    text = readFileSync(join(dir, MANIFEST_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CoworkError('unavailable', `cannot read ${join(dir, MANIFEST_FILE)}`, err);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CoworkError(
      'unavailable',
      `${join(dir, MANIFEST_FILE)} is not valid JSON — rebuild the image`,
      err,
    );
  }
  const parsed = ImageManifest.safeParse(json);
  if (!parsed.success) {
    throw new CoworkError(
      'unavailable',
      `${join(dir, MANIFEST_FILE)} is not a valid image manifest — rebuild the image`,
      parsed.error,
    );
  }
  return parsed.data;
}

export function writeManifest(dir: string, manifest: ImageManifest): void {
  writeFileSync(join(dir, MANIFEST_FILE), `${JSON.stringify(ImageManifest.parse(manifest), null, 2)}\n`);
}

/** Every file listed exists with its recorded size (cheap; no hashing). */
export function filesPresent(dir: string, manifest: ImageManifest): boolean {
  return Object.entries(manifest.files).every(([file, entry]) => {
    try {
      return statSync(join(dir, file)).size === entry.size;
    } catch {
      return false;
    }
  });
}

function readStamp(dir: string): Stamp {
  try {
    const parsed = Stamp.safeParse(JSON.parse(readFileSync(join(dir, STAMP_FILE), 'utf8')));
    return parsed.success ? parsed.data : {};
  } catch {
    return {};
  }
}

/**
 * Checks every file against the manifest's sha256. A file whose (size, mtime, ctime, inode)
 * matches a previous successful check is not hashed again; any write to it changes ctime.
 * Returns the names of files that do not match (empty = intact).
 */
export async function verifyFiles(dir: string, manifest: ImageManifest): Promise<string[]> {
  const old = readStamp(dir);
  const stamp: Stamp = {};
  const bad: string[] = [];
  for (const [file, entry] of Object.entries(manifest.files)) {
    const path = join(dir, file);
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(path);
    } catch {
      bad.push(file);
      continue;
    }
    const key = { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino };
    const prev = old[file];
    const same =
      prev !== undefined &&
      prev.sha256 === entry.sha256 &&
      prev.size === key.size &&
      prev.mtimeMs === key.mtimeMs &&
      prev.ctimeMs === key.ctimeMs &&
      prev.ino === key.ino;
    if (!same && (st.size !== entry.size || (await sha256File(path)) !== entry.sha256)) {
      bad.push(file);
      continue;
    }
    stamp[file] = { ...key, sha256: entry.sha256 };
  }
  try {
    writeFileSync(join(dir, STAMP_FILE), JSON.stringify(stamp));
  } catch {
    // A read-only cache just means the next start hashes again.
  }
  return bad;
}

/** Parses packages.tsv (name TAB version per line) from the build. */
export function parsePackages(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const [name, version] = line.split('\t');
    if (name && version) out[name] = version;
  }
  return out;
}
