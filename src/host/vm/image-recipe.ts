import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoworkError } from '../errors.js';
import type { Arch } from './driver.js';

/**
 * The image recipe: package lists (images/packages/<name>.list), the build script and its
 * hooks (images/), and the guest files (src/guest/). Its hash names the cache folder, so any
 * change to any of these files makes the image "stale" and the next build rebuilds it.
 */

export type ImageArch = 'amd64' | 'arm64';
export const IMAGE_ARCHES: readonly ImageArch[] = ['amd64', 'arm64'];

/** Bumped when the recipe format or the manifest's meaning changes. */
const RECIPE_FORMAT = 'cowork-image-recipe-v1';
const NAME_RE = /^[a-z][a-z0-9-]{0,31}$/;

/** The project root that holds images/ and src/guest/ (the same from src/ and from dist/). */
export function defaultRecipeRoot(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

export function hostImageArch(machine: string = process.arch): ImageArch {
  if (machine === 'x64' || machine === 'x86_64' || machine === 'amd64') return 'amd64';
  if (machine === 'arm64' || machine === 'aarch64') return 'arm64';
  throw new CoworkError('unsupported', `guest images exist for amd64 and arm64 hosts only, not ${machine}`);
}

export function parseImageArch(value: string): ImageArch {
  if (value === 'amd64' || value === 'x86_64') return 'amd64';
  if (value === 'arm64' || value === 'aarch64') return 'arm64';
  throw new CoworkError(
    'invalidArgument',
    `image architecture "${value}" is not supported — use amd64 or arm64`,
  );
}

/** Debian architecture → the driver's machine architecture. */
export function driverArch(arch: ImageArch): Arch {
  return arch === 'amd64' ? 'x86_64' : 'aarch64';
}

export class ImageRecipe {
  readonly root: string;

  constructor(root: string = defaultRecipeRoot()) {
    this.root = root;
  }

  get imagesDir(): string {
    return join(this.root, 'images');
  }

  get buildScript(): string {
    return join(this.imagesDir, 'build-image.sh');
  }

  get guestDir(): string {
    return join(this.root, 'src', 'guest');
  }

  /** Variant names that have a package list. */
  variants(): string[] {
    const dir = join(this.imagesDir, 'packages');
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((f) => f.endsWith('.list'))
      .map((f) => f.slice(0, -'.list'.length))
      .sort();
  }

  checkName(name: string): void {
    if (!NAME_RE.test(name) || !this.variants().includes(name)) {
      const known = this.variants().join(', ') || 'none';
      throw new CoworkError('invalidArgument', `unknown image "${name}" — known images: ${known}`);
    }
  }

  /** The package list files of a variant, following `@include` lines, in include order. */
  listFiles(name: string, seen: Set<string> = new Set()): string[] {
    this.checkName(name);
    if (seen.has(name)) {
      throw new CoworkError(
        'invalidArgument',
        `image recipe "${name}" includes itself (via ${[...seen].join(' → ')})`,
      );
    }
    seen.add(name);
    const file = join(this.imagesDir, 'packages', `${name}.list`);
    const out = [file];
    for (const raw of readFileSync(file, 'utf8').split('\n')) {
      const line = raw.replace(/#.*/, '').trim();
      if (line.startsWith('@include'))
        out.push(...this.listFiles(line.slice('@include'.length).trim(), seen));
    }
    return out;
  }

  /** Every file whose content goes into the recipe hash of `name`, sorted, deduplicated. */
  inputFiles(name: string): string[] {
    const shared = [this.buildScript, join(this.imagesDir, 'initramfs-modules.list')];
    const files = [
      ...this.listFiles(name),
      ...shared,
      ...walk(join(this.imagesDir, 'hooks')),
      ...walk(this.guestDir),
    ];
    return [...new Set(files)].sort();
  }

  /** sha256 (hex) over the format version, name, arch and every input file's path and content. */
  hash(name: string, arch: ImageArch): string {
    const h = createHash('sha256');
    h.update(`${RECIPE_FORMAT}\0${name}\0${arch}\0`);
    for (const file of this.inputFiles(name)) {
      let content: Buffer;
      try {
        content = readFileSync(file);
      } catch (err) {
        throw new CoworkError(
          'unavailable',
          `image recipe file ${file} cannot be read — is the installation complete?`,
          err,
        );
      }
      h.update(`${relative(this.root, file)}\0${content.length}\0`);
      h.update(content);
    }
    return h.digest('hex');
  }
}

function walk(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}
