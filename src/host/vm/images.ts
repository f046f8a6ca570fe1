import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, delimiter, join, resolve as resolvePath, sep } from 'node:path';
import { CoworkError } from '../errors.js';
import type { HostPaths } from '../paths.js';
import type { BootImage } from './driver.js';
import {
  filesPresent,
  IMAGE_FILES,
  type ImageManifest,
  parsePackages,
  readManifest,
  sha256File,
  verifyFiles,
  writeManifest,
} from './image-manifest.js';
import { driverArch, hostImageArch, type ImageArch, ImageRecipe, parseImageArch } from './image-recipe.js';

/**
 * The guest image cache: <cacheDir>/images/<name>-<arch>-<hash12>/ holds rootfs.ext4, vmlinuz,
 * initrd.img, modules.list, packages.tsv and manifest.json. A folder appears only complete
 * (built in a temp folder, then renamed). The recipe hash in its name ties it to the recipe
 * it was built from; `resolve` only ever returns the image of the current recipe.
 */

export interface ImageBuildOptions {
  arch?: ImageArch | string;
  force?: boolean;
  /** Stage start ("bootstrap", "rootfs", "initramfs", "finish", "manifest") and end ("… done in 12.3 s"). */
  onProgress?: (stage: string, message: string) => void;
  /** Every other line the build prints (mmdebstrap's log). */
  onLog?: (line: string) => void;
  signal?: AbortSignal;
}

export interface ImageBuildResult {
  dir: string;
  manifest: ImageManifest;
  /** False when an intact image for this recipe was already there. */
  built: boolean;
}

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

export interface ImageStoreOptions {
  /** Project root holding images/ and src/guest/ (default: this installation). */
  recipeRoot?: string;
  /** Extra environment for the build (e.g. COWORK_VM_MIRROR). */
  env?: NodeJS.ProcessEnv;
}

const SUITE_DEFAULT = 'bookworm';

export class ImageStore {
  readonly recipe: ImageRecipe;
  readonly dir: string;
  private readonly env: NodeJS.ProcessEnv;

  constructor(paths: HostPaths, opts: ImageStoreOptions = {}) {
    this.recipe = new ImageRecipe(opts.recipeRoot);
    this.dir = join(paths.cacheDir, 'images');
    this.env = { ...process.env, ...opts.env };
  }

  recipeHash(name: string, arch: ImageArch | string = hostImageArch()): string {
    return this.recipe.hash(name, parseImageArch(arch));
  }

  /** The cache folder the current recipe of (name, arch) builds into. */
  imageDir(name: string, arch: ImageArch | string = hostImageArch()): string {
    const a = parseImageArch(arch);
    return join(this.dir, `${name}-${a}-${this.recipeHash(name, a).slice(0, 12)}`);
  }

  async build(name: string, opts: ImageBuildOptions = {}): Promise<ImageBuildResult> {
    const arch = parseImageArch(opts.arch ?? hostImageArch());
    const hash = this.recipeHash(name, arch);
    const dir = this.imageDir(name, arch);
    const progress = opts.onProgress ?? (() => {});
    if (!opts.force) {
      const existing = this.complete(dir, hash);
      if (existing) {
        progress('cached', `image ${name} (${arch}) is up to date: ${dir}`);
        return { dir, manifest: existing, built: false };
      }
    }
    requireTool('mmdebstrap', this.env);
    requireTool('mke2fs', this.env);
    mkdirSync(this.dir, { recursive: true });
    const tmp = join(this.dir, `.tmp-${name}-${arch}-${randomBytes(4).toString('hex')}`);
    mkdirSync(tmp);
    const started = Date.now();
    try {
      const stages = await this.runBuildScript(name, arch, tmp, opts);
      const t0 = Date.now();
      progress('manifest', 'checksums and manifest.json');
      const manifest = await this.makeManifest(tmp, name, arch, hash, stages, started);
      const seconds = (Date.now() - t0) / 1000;
      manifest.stages.push({ name: 'manifest', seconds: round1(seconds) });
      manifest.totalSeconds = round1((Date.now() - started) / 1000);
      writeManifest(tmp, manifest);
      progress('manifest', `done in ${seconds.toFixed(1)} s`);
      this.install(tmp, dir, hash);
      return { dir, manifest: readManifest(dir) ?? manifest, built: true };
    } catch (err) {
      throw CoworkError.from(err, 'internal', `image build of ${name} (${arch}) failed`);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
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

  private complete(dir: string, hash: string): ImageManifest | undefined {
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
  private install(tmp: string, dir: string, hash: string): void {
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

  private runBuildScript(
    name: string,
    arch: ImageArch,
    out: string,
    opts: ImageBuildOptions,
  ): Promise<{ name: string; seconds: number }[]> {
    const progress = opts.onProgress ?? (() => {});
    const stages: { name: string; seconds: number }[] = [];
    const logPath = join(this.dir, `build-${name}-${arch}.log`);
    const log: string[] = [];
    return new Promise((resolvePromise, reject) => {
      const child = spawn('bash', [this.recipe.buildScript, '--name', name, '--arch', arch, '--out', out], {
        env: this.env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      const onAbort = () => {
        if (child.pid) {
          try {
            process.kill(-child.pid, 'SIGTERM');
          } catch {
            // already gone
          }
        }
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const onLine = (line: string) => {
        log.push(line);
        const start = /^STAGE (\S+) (.*)$/.exec(line);
        const done = /^STAGE-DONE (\S+) ([0-9.]+)$/.exec(line);
        if (done?.[1] && done[2]) {
          stages.push({ name: done[1], seconds: Number(done[2]) });
          progress(done[1], `done in ${Number(done[2]).toFixed(1)} s`);
        } else if (start?.[1] && start[2] !== undefined) {
          progress(start[1], start[2]);
        } else {
          opts.onLog?.(line);
        }
      };
      lines(child.stdout, onLine);
      lines(child.stderr, onLine);
      child.on('error', (err) =>
        reject(new CoworkError('unavailable', 'cannot run the image build script (bash)', err)),
      );
      child.on('close', (code, signal) => {
        opts.signal?.removeEventListener('abort', onAbort);
        writeFileSafe(logPath, `${log.join('\n')}\n`);
        if (opts.signal?.aborted) {
          reject(new CoworkError('cancelled', `image build of ${name} was cancelled`));
        } else if (code === 0) {
          resolvePromise(stages);
        } else {
          const tail = log.slice(-8).join('\n  ');
          const hint =
            code === 69 ? ' — run scripts/setup-host.sh' : code === 77 ? ' — run the build as root' : '';
          reject(
            new CoworkError(
              code === 69 || code === 77 ? 'unavailable' : 'internal',
              `image build of ${name} (${arch}) failed (${signal ?? `exit ${code}`})${hint}; full log: ${logPath}\n  ${tail}`,
            ),
          );
        }
      });
    });
  }

  private async makeManifest(
    dir: string,
    name: string,
    arch: ImageArch,
    hash: string,
    stages: { name: string; seconds: number }[],
    started: number,
  ): Promise<ImageManifest> {
    const files: ImageManifest['files'] = {};
    for (const file of IMAGE_FILES) {
      const path = join(dir, file);
      files[file] = { size: statSync(path).size, sha256: await sha256File(path) };
    }
    return {
      schema: 1,
      name,
      arch,
      suite: this.env.COWORK_VM_SUITE || SUITE_DEFAULT,
      recipeHash: hash,
      builtAt: new Date().toISOString(),
      kernelVersion: readFileSync(join(dir, 'kernel-version'), 'utf8').trim(),
      packages: parsePackages(readFileSync(join(dir, 'packages.tsv'), 'utf8')),
      files,
      stages,
      totalSeconds: round1((Date.now() - started) / 1000),
    };
  }
}

function requireTool(tool: string, env: NodeJS.ProcessEnv): void {
  const dirs = (env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin']);
  if (!dirs.some((d) => d && existsSync(join(d, tool)))) {
    throw new CoworkError(
      'unavailable',
      `${tool} is not installed, and building a guest image needs it — run scripts/setup-host.sh`,
    );
  }
}

function lines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    let i = buf.indexOf('\n');
    while (i >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
      i = buf.indexOf('\n');
    }
  });
  stream.on('end', () => {
    if (buf) onLine(buf);
  });
}

function writeFileSafe(path: string, text: string): void {
  try {
    writeFileSync(path, text);
  } catch {
    // the log is a convenience
  }
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}
