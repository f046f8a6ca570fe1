import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { CoworkError } from '../errors.js';
import { archiveName } from './image-archive.js';
import type { ImageArch } from './image-recipe.js';

/**
 * How `image build` runs images/build-image.sh. On Linux: directly (mmdebstrap on the host). On
 * macOS mmdebstrap cannot run, so the same script and recipe files run inside a debian:12
 * container of the first runtime found (docker, podman, Apple's `container`, or the one named
 * by COWORK_VM_CONTAINER_RUNTIME), with the project folder mounted read-only and the build's
 * temp folder mounted as its output. Everything here is pure (platform and PATH lookup are
 * injected) so the command lines are unit-tested without a runtime.
 */

export const CONTAINER_RUNTIMES = ['docker', 'podman', 'container'] as const;
export type ContainerRuntime = (typeof CONTAINER_RUNTIMES)[number];

export const BUILD_CONTAINER_IMAGE = 'debian:12';
/** Inside the container: the project (read-only), the output folder, and a work folder on the container's own disk. */
const SRC = '/cowork';
const OUT = '/out';
const WORK = '/var/tmp/cowork-work';
/** What build-image.sh calls (its `for tool in …` list), from Debian packages. */
const CONTAINER_PACKAGES = [
  'mmdebstrap',
  'e2fsprogs',
  'cpio',
  'gzip',
  'tar',
  'mawk',
  'zstd',
  'xz-utils',
  'ca-certificates',
];
/** Passed through to the script when set on the host. */
const PASSED_ENV = ['COWORK_VM_MIRROR', 'COWORK_VM_SUITE', 'COWORK_VM_SECURITY_MIRROR'];

export interface BuildCommand {
  command: string;
  args: string[];
  /** 'native' = build-image.sh on this host; otherwise the container runtime used. */
  via: 'native' | ContainerRuntime;
}

export interface BuildJob {
  /** Project root holding images/ and src/guest/. */
  recipeRoot: string;
  buildScript: string;
  name: string;
  arch: ImageArch;
  recipeHash: string;
  /** Host folder the image files are written to. */
  out: string;
  env: NodeJS.ProcessEnv;
}

export interface BuildHost {
  platform: NodeJS.Platform;
  /** Absolute path of a command on PATH, or undefined. */
  which: (command: string) => string | undefined;
}

/** A PATH lookup over `env.PATH` (executable regular files only). */
export function pathLookup(env: NodeJS.ProcessEnv): (command: string) => string | undefined {
  return (command) => {
    for (const dir of (env.PATH ?? '').split(delimiter)) {
      if (!dir) continue;
      const p = join(dir, command);
      try {
        accessSync(p, constants.X_OK);
        return p;
      } catch {
        // not here
      }
    }
    return undefined;
  };
}

/** The configured runtime if set (and present), else the first of docker, podman, container on PATH. */
export function chooseContainerRuntime(
  which: BuildHost['which'],
  preferred?: string,
): ContainerRuntime | undefined {
  if (preferred) {
    if (!(CONTAINER_RUNTIMES as readonly string[]).includes(preferred)) {
      throw new CoworkError(
        'invalidArgument',
        `COWORK_VM_CONTAINER_RUNTIME = "${preferred}" is not one of ${CONTAINER_RUNTIMES.join(', ')}`,
      );
    }
    if (!which(preferred)) {
      throw new CoworkError(
        'unavailable',
        `COWORK_VM_CONTAINER_RUNTIME names ${preferred}, which is not on PATH — install it or unset the variable`,
      );
    }
    return preferred as ContainerRuntime;
  }
  return CONTAINER_RUNTIMES.find((r) => which(r) !== undefined);
}

/** The shell line run inside the container: install mmdebstrap & co, then the recipe's own script. */
export function containerScript(job: Pick<BuildJob, 'name' | 'arch'>): string {
  return [
    'set -e',
    'export DEBIAN_FRONTEND=noninteractive',
    'apt-get update -qq >&2',
    `apt-get install -y -qq --no-install-recommends ${CONTAINER_PACKAGES.join(' ')} >&2`,
    `exec bash ${SRC}/images/build-image.sh --name ${job.name} --arch ${job.arch} --out ${OUT} --work ${WORK}`,
  ].join('; ');
}

/**
 * The runtime's command line. docker and podman take `--privileged` (mmdebstrap's root mode
 * mounts /proc and /dev in the chroot); Apple's `container` has no --privileged, but each
 * container is its own VM, so all capabilities are granted instead. The container's platform is
 * the image's arch, so the packages run natively (or under the runtime's emulation).
 */
export function containerBuildArgs(runtime: ContainerRuntime, job: BuildJob): string[] {
  const env = PASSED_ENV.flatMap((k) => (job.env[k] ? ['-e', `${k}=${job.env[k]}`] : []));
  const script = ['bash', '-c', containerScript(job)];
  if (runtime === 'container') {
    return [
      'run',
      '--rm',
      '--arch',
      job.arch,
      '--cap-add',
      'ALL',
      '--memory',
      '4G',
      '--mount',
      `type=bind,source=${job.recipeRoot},target=${SRC},readonly`,
      '--mount',
      `type=bind,source=${job.out},target=${OUT}`,
      ...env,
      BUILD_CONTAINER_IMAGE,
      ...script,
    ];
  }
  return [
    'run',
    '--rm',
    '--privileged',
    '--platform',
    `linux/${job.arch}`,
    '-v',
    `${job.recipeRoot}:${SRC}:ro`,
    '-v',
    `${job.out}:${OUT}`,
    ...env,
    BUILD_CONTAINER_IMAGE,
    ...script,
  ];
}

/** How to run the build on this host, or an `unsupported` error saying how to get an image instead. */
export function buildCommandFor(host: BuildHost, job: BuildJob): BuildCommand {
  if (host.platform !== 'darwin') {
    return {
      command: 'bash',
      args: [job.buildScript, '--name', job.name, '--arch', job.arch, '--out', job.out],
      via: 'native',
    };
  }
  const runtime = chooseContainerRuntime(host.which, job.env.COWORK_VM_CONTAINER_RUNTIME);
  if (!runtime) throw noRuntime(job);
  const command = host.which(runtime) ?? runtime;
  return { command, args: containerBuildArgs(runtime, job), via: runtime };
}

function noRuntime(job: BuildJob): CoworkError {
  const arch = ` --arch ${job.arch}`;
  return new CoworkError(
    'unsupported',
    `building a guest image on macOS needs a container runtime to run mmdebstrap in (docker, podman or Apple's container), and none is on PATH. ` +
      `Install one and run this again, or build on Linux with the same cowork-vm version and import it here:\n` +
      `  on Linux:    cowork-vm image build ${job.name}${arch} && cowork-vm image export ${job.name}${arch}\n` +
      `  on the Mac:  cowork-vm image import ${archiveName(job.name, job.arch, job.recipeHash)}`,
  );
}
