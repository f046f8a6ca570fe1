import { randomBytes } from 'node:crypto';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { ImageCache } from '../../src/host/vm/image-cache.js';
import {
  IMAGE_FILES,
  type ImageManifest,
  sha256File,
  writeManifest,
} from '../../src/host/vm/image-manifest.js';
import type { ImageArch } from '../../src/host/vm/image-recipe.js';
import { BLOCK, END_OF_ARCHIVE, padding, writeChecksum } from '../../src/host/vm/image-tar.js';

/** Sizes of a small synthetic image: not multiples of 512, and one empty file. */
const SIZES: Record<string, number> = {
  'rootfs.ext4': 70_001,
  vmlinuz: 5_000,
  'initrd.img': 3_333,
  'modules.list': 0,
  'packages.tsv': 40,
};

/**
 * Writes a small but self-consistent image (random files + a manifest written by the project's
 * own manifest code, with the cache's current recipe hash) where the cache expects it.
 */
export async function syntheticImage(
  cache: ImageCache,
  name = 'base',
  arch: ImageArch = 'amd64',
  recipeHash = cache.recipeHash(name, arch),
): Promise<{ dir: string; manifest: ImageManifest }> {
  const dir = cache.imageDir(name, arch);
  mkdirSync(dir, { recursive: true });
  const files: ImageManifest['files'] = {};
  for (const f of IMAGE_FILES) {
    const path = join(dir, f);
    writeFileSync(
      path,
      f === 'packages.tsv' ? 'openssh-server\t1:9.2p1\ngit\t1:2.39.5\n' : randomBytes(SIZES[f] ?? 10),
    );
    files[f] = { size: statSync(path).size, sha256: await sha256File(path) };
  }
  writeFileSync(join(dir, 'kernel-version'), '6.1.0-test-amd64\n');
  const manifest: ImageManifest = {
    schema: 1,
    name,
    arch,
    suite: 'bookworm',
    recipeHash,
    builtAt: '2026-12-01T10:00:00.000Z',
    kernelVersion: '6.1.0-test-amd64',
    packages: { 'openssh-server': '1:9.2p1', git: '1:2.39.5' },
    files,
    stages: [{ name: 'bootstrap', seconds: 1 }],
    totalSeconds: 1,
  };
  writeManifest(dir, manifest);
  return { dir, manifest };
}

export interface CraftedEntry {
  name: string;
  content?: Buffer | string;
  /** Type flag ('0' file, '1' hard link, '2' symlink, '3' char device, '5' dir, 'x' pax, 'L' GNU long name). */
  type?: string;
  linkname?: string;
  prefix?: string;
  /** Size written in the header, if not the content's length. */
  size?: number;
}

/** A tar header the way an attacker writes one: any name, prefix, type and link target. */
export function craftHeader(e: CraftedEntry): Buffer {
  const content = Buffer.from(e.content ?? '');
  const h = Buffer.alloc(BLOCK);
  h.write(e.name, 0, 100, 'latin1');
  h.write('0000644\0', 100, 8, 'ascii');
  h.write('0000000\0', 108, 8, 'ascii');
  h.write('0000000\0', 116, 8, 'ascii');
  h.write(`${(e.size ?? content.length).toString(8).padStart(11, '0')}\0`, 124, 12, 'ascii');
  h.write('15000000000\0', 136, 12, 'ascii');
  h.write(e.type ?? '0', 156, 1, 'latin1');
  if (e.linkname) h.write(e.linkname, 157, 100, 'latin1');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  if (e.prefix) h.write(e.prefix, 345, 155, 'latin1');
  writeChecksum(h);
  return h;
}

/** A whole archive of crafted entries (optionally gzip-compressed), ended properly. */
export function craftArchive(entries: CraftedEntry[], opts: { gzip?: boolean; end?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const content = Buffer.from(e.content ?? '');
    parts.push(craftHeader(e), content, padding(content.length));
  }
  if (opts.end !== false) parts.push(END_OF_ARCHIVE);
  const tar = Buffer.concat(parts);
  return opts.gzip ? gzipSync(tar) : tar;
}
