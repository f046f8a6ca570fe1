import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, join, resolve as resolvePath, sep } from 'node:path';
import { CoworkError } from '../errors.js';
import type { HostPaths } from '../paths.js';
import type { BootImage } from './driver.js';
import { filesPresent, type ImageManifest, readManifest, verifyFiles } from './image-manifest.js';
import { driverArch, hostImageArch, type ImageArch, ImageRecipe, parseImageArch } from './image-recipe.js';

/**
 * The guest image cache: <cacheDir>/images/<name>-<arch>-<hash12>/ holds rootfs.ext4, vmlinuz,
 * initrd.img, modules.list, packages.tsv and manifest.json. A folder appears only complete
 * (built in a temp folder, then renamed by `install`). The recipe hash in its name ties it to
 * the recipe it was built from; `resolve` only ever returns the image of the current recipe.
 * Building is image-build.ts; this file only looks up, lists, verifies, installs and removes.
 */

export interface ImageInfo {
  name: string;
  arch: ImageArch;
  hash: string;
  dir: string;
  sizeBytes: number;
  builtAt: string;
  status: 'current' | 'stale';
}

export interface ResolvedImage {
  dir: string;
  manifest: ImageManifest;
  boot: BootImage;
}

export interface ImageCacheOptions {
  /** Project root holding images/ and src/guest/ (default: this installation). */
  recipeRoot?: string;
}

export class ImageCache {
  readonly recipe: ImageRecipe;
  readonly dir: string;

  constructor(paths: HostPaths, opts: ImageCacheOptions = {}) {
    this.recipe = new ImageRecipe(opts.recipeRoot);
    this.dir = join(paths.cacheDir, 'images');
  }

  recipeHash(name: string, arch: ImageArch | string = hostImageArch()): string {
    return this.recipe.hash(name, parseImageArch(arch));
  }

  /** The cache folder the current recipe of (name, arch) builds into. */
  imageDir(name: string, arch: ImageArch | string = hostImageArch()): string {
    const a = parseImageArch(arch);
    return join(this.dir, `${name}-${a}-${this.recipeHash(name, a).slice(0, 12)}`);
  }

  /** Every image folder in the cache, with whether it matches the current recipe. */
  list(): ImageInfo[] {
    if (!existsSync(this.dir)) return [];
    const out: ImageInfo[] = [];
    for (const entry of readdirSync(this.dir).sort()) {
      if (entry.startsWith('.')) continue;
      const dir = join(this.dir, entry);
      let manifest: ImageManifest | undefined;
      try {
        manifest = readManifest(dir);
      } catch {
        manifest = undefined;
      }
      if (!manifest) continue;
      let current = false;
      try {
        current = this.recipeHash(manifest.name, manifest.arch) === manifest.recipeHash;
      } catch {
        current = false; // a variant whose recipe no longer exists
      }
      const sizeBytes = Object.values(manifest.files).reduce((n, f) => n + f.size, 0);
      out.push({
        name: manifest.name,
        arch: manifest.arch,
        hash: manifest.recipeHash,
        dir,
        sizeBytes,
        builtAt: manifest.builtAt,
        status: current ? 'current' : 'stale',
      });
    }
    return out;
  }

  /**
   * Removes image folders: an image folder (path or folder name) or every image of a name
   * (optionally one arch, optionally only stale ones). Returns the folders removed.
   */
  remove(target: string, opts: { arch?: ImageArch | string; staleOnly?: boolean } = {}): string[] {
    const byDir = this.folderOf(target);
    const victims = byDir
      ? [byDir]
      : this.list()
          .filter((i) => i.name === target)
          .filter((i) => opts.arch === undefined || i.arch === parseImageArch(opts.arch))
          .filter((i) => !opts.staleOnly || i.status === 'stale')
          .map((i) => i.dir);
    if (victims.length === 0) {
      throw new CoworkError('notFound', `no built image "${target}" — see: cowork-vm image ls`);
    }
    for (const dir of victims) rmSync(dir, { recursive: true, force: true });
    return victims;
  }

  /**
   * The built image of the CURRENT recipe, checked against its manifest (sha256 of every file,
   * cached by (size, mtime, ctime, inode) so the second start does not hash 300 MB again).
   */
  async resolve(
    name: string,
    arch: ImageArch | string = hostImageArch(),
    opts: { verify?: boolean } = {},
  ): Promise<ResolvedImage> {
    const a = parseImageArch(arch);
    this.recipe.checkName(name);
    const dir = this.imageDir(name, a);
    const manifest = readManifest(dir);
    if (!manifest) {
      throw new CoworkError('notFound', `image "${name}" is not built — run: cowork-vm image build ${name}`);
    }
    if (opts.verify !== false) await this.verify(dir, manifest);
    return {
      dir,
      manifest,
      boot: {
        kernel: join(dir, 'vmlinuz'),
        ...(manifest.files.vmlinux ? { pvhKernel: join(dir, 'vmlinux') } : {}),
        initrd: join(dir, 'initrd.img'),
        rootfs: join(dir, 'rootfs.ext4'),
        arch: driverArch(a),
      },
    };
  }

  /** Throws CoworkError('unavailable') naming the first file whose sha256 differs from the manifest. */
  async verify(dir: string, manifest: ImageManifest | undefined = readManifest(dir)): Promise<void> {
    if (!manifest) throw new CoworkError('notFound', `${dir} has no manifest.json — rebuild the image`);
    const bad = await verifyFiles(dir, manifest);
    if (bad.length > 0) {
      throw new CoworkError(
        'unavailable',
        `image "${manifest.name}" is corrupted (sha256 mismatch on ${bad.join(', ')}) — rebuild: cowork-vm image build ${manifest.name} --force`,
      );
    }
  }

  /** The manifest of an intact image of this recipe in `dir`, else undefined. */
  complete(dir: string, hash: string): ImageManifest | undefined {
    try {
      const m = readManifest(dir);
      return m && m.recipeHash === hash && filesPresent(dir, m) ? m : undefined;
    } catch {
      return undefined;
    }
  }

  private folderOf(target: string): string | undefined {
    const candidate = target.includes(sep) ? resolvePath(target) : join(this.dir, target);
    if (!candidate.startsWith(this.dir + sep) || basename(candidate).startsWith('.')) return undefined;
    return existsSync(join(candidate, 'manifest.json')) ? candidate : undefined;
  }

  /** Atomically puts a finished build in place (replacing an old folder of the same recipe). */
  install(tmp: string, dir: string, hash: string): void {
    const old = `${dir}.old-${randomBytes(4).toString('hex')}`;
    const hadOld = existsSync(dir);
    if (hadOld) renameSync(dir, old);
    try {
      renameSync(tmp, dir);
    } catch (err) {
      // Another build of the same recipe finished first: keep whichever is complete.
      if (this.complete(dir, hash)) return;
      throw new CoworkError('internal', `cannot move the built image into ${dir}`, err);
    } finally {
      if (hadOld) rmSync(old, { recursive: true, force: true });
    }
  }
}
