import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { CoworkError } from '../errors.js';
import { type BuildCommand, type BuildHost, buildCommandFor, pathLookup } from './image-build-container.js';
import type { ImageCache } from './image-cache.js';
import {
  IMAGE_FILES,
  type ImageManifest,
  OPTIONAL_IMAGE_FILES,
  parsePackages,
  readManifest,
  sha256File,
  writeManifest,
} from './image-manifest.js';
import { hostImageArch, type ImageArch, parseImageArch } from './image-recipe.js';
import { assertBootableKernel, assertPvhKernel } from './kernel-format.js';

/**
 * Building a guest image: runs images/build-image.sh in a temp folder of the cache, records the
 * stage times and checksums in manifest.json, then hands the folder to the cache's atomic
 * `install`. An intact image of the current recipe is reused unless `force`.
 */

export interface ImageBuildOptions {
  arch?: ImageArch | string;
  force?: boolean;
  /** Stage start ("bootstrap", "rootfs", "initramfs", "finish", "manifest") and end ("… done in 12.3 s"). */
  onProgress?: (stage: string, message: string) => void;
  /** Every other line the build prints (mmdebstrap's log). */
  onLog?: (line: string) => void;
  signal?: AbortSignal;
  /** The host the build runs on (default: this one); on macOS the build runs in a container. */
  host?: BuildHost;
  /** Where binfmt_misc is mounted (tests point it elsewhere); default /proc/sys/fs/binfmt_misc. */
  binfmtDir?: string;
}

export interface ImageBuildResult {
  dir: string;
  manifest: ImageManifest;
  /** False when an intact image for this recipe was already there. */
  built: boolean;
}

type StageTime = { name: string; seconds: number };

const SUITE_DEFAULT = 'bookworm';

export async function buildImage(
  cache: ImageCache,
  name: string,
  opts: ImageBuildOptions & { env: NodeJS.ProcessEnv },
): Promise<ImageBuildResult> {
  const arch = parseImageArch(opts.arch ?? hostImageArch());
  const hash = cache.recipeHash(name, arch);
  const dir = cache.imageDir(name, arch);
  const progress = opts.onProgress ?? (() => {});
  if (!opts.force) {
    const existing = cache.complete(dir, hash);
    if (existing) {
      progress('cached', `image ${name} (${arch}) is up to date: ${dir}`);
      return { dir, manifest: existing, built: false };
    }
  }
  mkdirSync(cache.dir, { recursive: true });
  const tmp = join(cache.dir, `.tmp-${name}-${arch}-${randomBytes(4).toString('hex')}`);
  const host = opts.host ?? { platform: process.platform, which: pathLookup(opts.env) };
  const { buildScript, root: recipeRoot } = cache.recipe;
  const job = { recipeRoot, buildScript, name, arch, recipeHash: hash, out: tmp, env: opts.env };
  const command = buildCommandFor(host, job);
  if (command.via === 'native') {
    requireTool('mmdebstrap', opts.env);
    requireTool('mke2fs', opts.env);
    requireForeignExec(arch, opts.binfmtDir);
  } else {
    progress('container', `running the recipe in a debian:12 container (${command.via})`);
  }
  mkdirSync(tmp);
  const started = Date.now();
  try {
    const stages = await runBuildScript(cache, name, arch, command, opts);
    // The image's kernel must be what VZ and QEMU's direct boot load (a raw arm64 Image, an
    // x86 bzImage): a build that produced anything else is not installed.
    assertBootableKernel(join(tmp, 'vmlinuz'), arch);
    if (arch === 'amd64') assertPvhKernel(join(tmp, 'vmlinux'));
    const t0 = Date.now();
    progress('manifest', 'checksums and manifest.json');
    const manifest = await makeManifest(tmp, { name, arch, hash, stages, started, env: opts.env });
    const seconds = (Date.now() - t0) / 1000;
    manifest.stages.push({ name: 'manifest', seconds: round1(seconds) });
    manifest.totalSeconds = round1((Date.now() - started) / 1000);
    writeManifest(tmp, manifest);
    progress('manifest', `done in ${seconds.toFixed(1)} s`);
    cache.install(tmp, dir, hash);
    return { dir, manifest: readManifest(dir) ?? manifest, built: true };
  } catch (err) {
    throw CoworkError.from(err, 'internal', `image build of ${name} (${arch}) failed`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function runBuildScript(
  cache: ImageCache,
  name: string,
  arch: ImageArch,
  command: BuildCommand,
  opts: ImageBuildOptions & { env: NodeJS.ProcessEnv },
): Promise<StageTime[]> {
  const progress = opts.onProgress ?? (() => {});
  const stages: StageTime[] = [];
  const logPath = join(cache.dir, `build-${name}-${arch}.log`);
  const log: string[] = [];
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command.command, command.args, {
      env: opts.env,
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
      stageLine(line, stages, progress, opts.onLog);
    };
    lines(child.stdout, onLine);
    lines(child.stderr, onLine);
    child.on('error', (err) =>
      reject(new CoworkError('unavailable', `cannot run the image build (${command.command})`, err)),
    );
    child.on('close', (code, signal) => {
      opts.signal?.removeEventListener('abort', onAbort);
      writeFileSafe(logPath, `${log.join('\n')}\n`);
      if (opts.signal?.aborted) {
        reject(new CoworkError('cancelled', `image build of ${name} was cancelled`));
      } else if (code === 0) {
        resolvePromise(stages);
      } else {
        reject(buildFailure(`${name} (${arch})`, code, signal, logPath, log));
      }
    });
  });
}

/** The build script's protocol: `STAGE name text` starts a stage, `STAGE-DONE name seconds` ends it. */
function stageLine(
  line: string,
  stages: StageTime[],
  progress: (stage: string, message: string) => void,
  onLog: ((line: string) => void) | undefined,
): void {
  const start = /^STAGE (\S+) (.*)$/.exec(line);
  const done = /^STAGE-DONE (\S+) ([0-9.]+)$/.exec(line);
  if (done?.[1] && done[2]) {
    stages.push({ name: done[1], seconds: Number(done[2]) });
    progress(done[1], `done in ${Number(done[2]).toFixed(1)} s`);
  } else if (start?.[1] && start[2] !== undefined) {
    progress(start[1], start[2]);
  } else {
    onLog?.(line);
  }
}

/** Exit 69: a host tool is missing; 77: not root. Both are the host's to fix, not a bug. */
function buildFailure(
  what: string,
  code: number | null,
  signal: NodeJS.Signals | null,
  logPath: string,
  log: string[],
): CoworkError {
  const tail = log.slice(-8).join('\n  ');
  const hint = code === 69 ? ' — run scripts/setup-host.sh' : code === 77 ? ' — run the build as root' : '';
  return new CoworkError(
    code === 69 || code === 77 ? 'unavailable' : 'internal',
    `image build of ${what} failed (${signal ?? `exit ${code}`})${hint}; full log: ${logPath}\n  ${tail}`,
  );
}

async function makeManifest(
  dir: string,
  build: {
    name: string;
    arch: ImageArch;
    hash: string;
    stages: StageTime[];
    started: number;
    env: NodeJS.ProcessEnv;
  },
): Promise<ImageManifest> {
  const { name, arch, hash, stages, started } = build;
  const files: ImageManifest['files'] = {};
  const optional: readonly string[] = OPTIONAL_IMAGE_FILES;
  for (const file of [...IMAGE_FILES, ...OPTIONAL_IMAGE_FILES]) {
    const path = join(dir, file);
    if (optional.includes(file) && !existsSync(path)) continue;
    files[file] = { size: statSync(path).size, sha256: await sha256File(path) };
  }
  return {
    schema: 1,
    name,
    arch,
    suite: build.env.COWORK_VM_SUITE || SUITE_DEFAULT,
    recipeHash: hash,
    builtAt: new Date().toISOString(),
    kernelVersion: readFileSync(join(dir, 'kernel-version'), 'utf8').trim(),
    packages: parsePackages(readFileSync(join(dir, 'packages.tsv'), 'utf8')),
    files,
    stages,
    totalSeconds: round1((Date.now() - started) / 1000),
  };
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

const BINFMT_NAME: Record<ImageArch, string> = { amd64: 'qemu-x86_64', arm64: 'qemu-aarch64' };

/**
 * A foreign-architecture build (arm64 on an x86_64 host) runs the guest's maintainer scripts
 * through qemu-user: binfmt_misc must have the emulator registered, or mmdebstrap fails deep in
 * its log with "Exec format error". Checked up front so the message says what to do.
 */
export function requireForeignExec(
  arch: ImageArch,
  binfmtDir = '/proc/sys/fs/binfmt_misc',
  host: ImageArch = hostImageArch(),
): void {
  if (arch === host) return;
  const entry = join(binfmtDir, BINFMT_NAME[arch]);
  let enabled = false;
  try {
    enabled = readFileSync(entry, 'utf8').split('\n')[0] === 'enabled';
  } catch {
    enabled = false;
  }
  if (!enabled) {
    throw new CoworkError(
      'unavailable',
      `building an ${arch} image on an ${host} host runs ${arch} programs through qemu-user, but ${entry} is not an enabled binfmt_misc entry — run scripts/setup-host.sh --for image (it installs qemu-user-static and registers ${BINFMT_NAME[arch]})`,
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
