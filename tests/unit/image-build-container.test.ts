import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import {
  type BuildJob,
  buildCommandFor,
  chooseContainerRuntime,
  containerBuildArgs,
  containerScript,
  pathLookup,
} from '../../src/host/vm/image-build-container.js';
import { defaultRecipeRoot } from '../../src/host/vm/image-recipe.js';
import { ImageStore } from '../../src/host/vm/images.js';

// How `image build` runs the recipe: natively on Linux, in a debian:12 container on macOS.
const job: BuildJob = {
  recipeRoot: '/Users/me/cowork-vm',
  buildScript: '/Users/me/cowork-vm/images/build-image.sh',
  name: 'base',
  arch: 'arm64',
  recipeHash: '0123456789abcdef'.repeat(4),
  out: '/Users/me/Library/Caches/cowork-vm/images/.tmp-base-arm64-1a2b3c4d',
  env: {},
};
const on =
  (...present: string[]) =>
  (cmd: string) =>
    present.includes(cmd) ? `/usr/local/bin/${cmd}` : undefined;
const INNER =
  'set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -qq >&2; ' +
  'apt-get install -y -qq --no-install-recommends mmdebstrap e2fsprogs cpio gzip tar mawk zstd xz-utils ca-certificates >&2; ' +
  'exec bash /cowork/images/build-image.sh --name base --arch arm64 --out /out --work /var/tmp/cowork-work';

describe('container runtime detection', () => {
  it('prefers docker, then podman, then Apple container', () => {
    expect(chooseContainerRuntime(on('docker', 'podman', 'container'))).toBe('docker');
    expect(chooseContainerRuntime(on('podman', 'container'))).toBe('podman');
    expect(chooseContainerRuntime(on('container'))).toBe('container');
    expect(chooseContainerRuntime(on())).toBeUndefined();
  });

  it('uses the configured runtime, and says so when it is missing or unknown', () => {
    expect(chooseContainerRuntime(on('docker', 'container'), 'container')).toBe('container');
    expect(() => chooseContainerRuntime(on('docker'), 'podman')).toThrow(
      /COWORK_VM_CONTAINER_RUNTIME names podman, which is not on PATH/,
    );
    expect(() => chooseContainerRuntime(on('docker'), 'lxc')).toThrow(
      /"lxc" is not one of docker, podman, container/,
    );
  });

  it('pathLookup finds only executable files on PATH', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cowork-which-'));
    try {
      writeFileSync(join(dir, 'podman'), '#!/bin/sh\n');
      chmodSync(join(dir, 'podman'), 0o755);
      writeFileSync(join(dir, 'docker'), 'not executable');
      const which = pathLookup({ PATH: `/nonexistent:${dir}` });
      expect(which('podman')).toBe(join(dir, 'podman'));
      expect(which('docker')).toBeUndefined();
      expect(chooseContainerRuntime(which)).toBe('podman');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('container build command line', () => {
  it('docker: privileged debian:12 of the image arch, project read-only, output mounted', () => {
    expect(containerBuildArgs('docker', job)).toEqual([
      'run',
      '--rm',
      '--privileged',
      '--platform',
      'linux/arm64',
      '-v',
      '/Users/me/cowork-vm:/cowork:ro',
      '-v',
      `${job.out}:/out`,
      'debian:12',
      'bash',
      '-c',
      INNER,
    ]);
    expect(containerBuildArgs('podman', job)).toEqual(containerBuildArgs('docker', job));
  });

  it('Apple container: no --privileged there, so all capabilities, and --mount with readonly', () => {
    expect(containerBuildArgs('container', job)).toEqual([
      'run',
      '--rm',
      '--arch',
      'arm64',
      '--cap-add',
      'ALL',
      '--memory',
      '4G',
      '--mount',
      'type=bind,source=/Users/me/cowork-vm,target=/cowork,readonly',
      '--mount',
      `type=bind,source=${job.out},target=/out`,
      'debian:12',
      'bash',
      '-c',
      INNER,
    ]);
  });

  it('passes the mirror and suite through, and nothing else of the host environment', () => {
    const env = {
      COWORK_VM_MIRROR: 'http://mirror.local/debian',
      COWORK_VM_SUITE: 'trixie',
      HOME: '/Users/me',
    };
    const args = containerBuildArgs('docker', { ...job, env });
    expect(args).toContain('COWORK_VM_MIRROR=http://mirror.local/debian');
    expect(args).toContain('COWORK_VM_SUITE=trixie');
    expect(args.join(' ')).not.toContain('HOME');
    expect(containerScript({ name: 'browser', arch: 'amd64' })).toContain('--name browser --arch amd64');
  });

  it('Linux runs the script natively, as before', () => {
    expect(buildCommandFor({ platform: 'linux', which: on('docker') }, job)).toEqual({
      command: 'bash',
      args: [job.buildScript, '--name', 'base', '--arch', 'arm64', '--out', job.out],
      via: 'native',
    });
  });

  it('macOS runs the found runtime by its full path', () => {
    const c = buildCommandFor({ platform: 'darwin', which: on('podman') }, job);
    expect(c.command).toBe('/usr/local/bin/podman');
    expect(c.via).toBe('podman');
    expect(c.args.slice(0, 3)).toEqual(['run', '--rm', '--privileged']);
  });

  it('macOS without a runtime says how to build on Linux and import', () => {
    let err: unknown;
    try {
      buildCommandFor({ platform: 'darwin', which: on() }, job);
    } catch (e) {
      err = e;
    }
    expect(CoworkError.is(err, 'unsupported')).toBe(true);
    const msg = (err as Error).message;
    expect(msg).toContain('needs a container runtime');
    expect(msg).toContain('docker, podman or Apple');
    expect(msg).toContain(
      'cowork-vm image build base --arch arm64 && cowork-vm image export base --arch arm64',
    );
    expect(msg).toContain('cowork-vm image import cowork-vm-image-base-arm64-0123456789ab.tar.gz');
  });
});

describe('ImageStore.build on macOS', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'cowork-imgbuild-mac-'));
    cpSync(join(defaultRecipeRoot(), 'images'), join(root, 'recipe', 'images'), { recursive: true });
    cpSync(join(defaultRecipeRoot(), 'src', 'guest'), join(root, 'recipe', 'src', 'guest'), {
      recursive: true,
    });
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  /** A docker stand-in that runs a build-image.sh stand-in whose kernel is written by `kernel`. */
  function standInBuild(kernel: string): ImageStore {
    // build-image.sh stand-in (the real one needs mmdebstrap) and a `docker` that does what
    // `docker run -v SRC:/cowork:ro -v OUT:/out …` would: run the mounted script with --out OUT.
    writeFileSync(
      join(root, 'recipe', 'images', 'build-image.sh'),
      `#!/bin/bash
set -eu
while [ $# -gt 0 ]; do case "$1" in --out) out="$2"; shift 2 ;; *) shift ;; esac; done
echo "STAGE bootstrap pretend"; echo "STAGE-DONE bootstrap 1.0"
printf r >"$out/rootfs.ext4"; ${kernel}; printf i >"$out/initrd.img"
printf 'ext4\\n' >"$out/modules.list"; printf 'git\\t1\\n' >"$out/packages.tsv"; echo 6.1.0-9-arm64 >"$out/kernel-version"
`,
    );
    const bin = join(root, 'bin');
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'docker'),
      `#!/bin/bash
printf '%s\\n' "$@" >"${join(root, 'docker-args')}"
while [ $# -gt 0 ]; do
  case "$1" in -v) case "$2" in *:/cowork:ro) src="\${2%:/cowork:ro}" ;; *:/out) out="\${2%:/out}" ;; esac; shift 2 ;; *) shift ;; esac
done
exec bash "$src/images/build-image.sh" --out "$out"
`,
    );
    chmodSync(join(bin, 'docker'), 0o755);
    const paths = { cacheDir: join(root, 'cache'), stateDir: join(root, 's'), configDir: join(root, 'c') };
    const store = new ImageStore(paths, {
      recipeRoot: join(root, 'recipe'),
      env: { PATH: `${bin}:/usr/bin:/bin` },
    });
    return store;
  }
  // 56 zero bytes and the arm64 Image magic "ARMd" at offset 56: what the kernel check wants.
  const RAW_ARM64 = 'head -c 56 /dev/zero >"$out/vmlinuz"; printf ARMd >>"$out/vmlinuz"';

  it('runs the recipe through the runtime and installs what it wrote to the mounted output', async () => {
    const store = standInBuild(RAW_ARM64);
    const events: string[] = [];
    const res = await store.build('base', {
      arch: 'arm64',
      host: { platform: 'darwin', which: pathLookup({ PATH: join(root, 'bin') }) },
      onProgress: (stage, msg) => events.push(`${stage}: ${msg}`),
    });
    expect(events[0]).toBe('container: running the recipe in a debian:12 container (docker)');
    expect(res.built).toBe(true);
    expect(res.manifest).toMatchObject({ arch: 'arm64', kernelVersion: '6.1.0-9-arm64' });
    expect(store.list()).toEqual([expect.objectContaining({ arch: 'arm64', status: 'current' })]);
    const args = readFileSync(join(root, 'docker-args'), 'utf8').split('\n');
    expect(args).toEqual(
      expect.arrayContaining(['--privileged', 'linux/arm64', `${join(root, 'recipe')}:/cowork:ro`]),
    );
  });

  it('refuses and installs nothing when the build produced a kernel VZ cannot boot (gzip vmlinuz)', async () => {
    const store = standInBuild('printf "\\037\\213\\010\\000" >"$out/vmlinuz"');
    const err = await store
      .build('base', {
        arch: 'arm64',
        host: { platform: 'darwin', which: pathLookup({ PATH: join(root, 'bin') }) },
      })
      .catch((e: unknown) => e);
    expect(CoworkError.is(err, 'invalidArgument'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/gzip file, not the arm64-image .*compressed/);
    expect(store.list()).toEqual([]);
    expect(readdirSync(join(root, 'cache', 'images')).filter((f) => !f.endsWith('.log'))).toEqual([]);
  });

  it('fails before creating anything when no runtime is present', async () => {
    const paths = { cacheDir: join(root, 'cache'), stateDir: join(root, 's'), configDir: join(root, 'c') };
    const store = new ImageStore(paths, { recipeRoot: join(root, 'recipe') });
    const err = await store
      .build('base', { arch: 'arm64', host: { platform: 'darwin', which: on() } })
      .catch((e: unknown) => e);
    expect(CoworkError.is(err, 'unsupported')).toBe(true);
    expect(store.list()).toEqual([]);
    const images = join(root, 'cache', 'images');
    expect(existsSync(images) ? readdirSync(images) : []).toEqual([]);
  });
});
