import {
  closeSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import { hostPaths } from '../../src/host/paths.js';
import {
  IMAGE_FILES,
  type ImageManifest,
  readManifest,
  sha256File,
} from '../../src/host/vm/image-manifest.js';
import { ImageStore } from '../../src/host/vm/images.js';

// Builds the real base image with mmdebstrap (or reuses the cached build of the current recipe)
// in the user's cache dir (COWORK_VM_CACHE_DIR overrides), then checks what is in it.
const store = new ImageStore(hostPaths());
let dir: string;
let manifest: ImageManifest;
const stages: string[] = [];

beforeAll(async () => {
  const res = await store.build('base', { onProgress: (stage, msg) => stages.push(`${stage}: ${msg}`) });
  dir = res.dir;
  manifest = res.manifest;
}, 1_200_000);

describe('base image', () => {
  it('reports each stage (or that the cache was used)', () => {
    const names = stages.map((s) => s.split(':')[0]);
    if (names.includes('cached')) expect(names).toEqual(['cached']);
    else expect(names).toEqual(expect.arrayContaining(['bootstrap', 'rootfs', 'initramfs', 'manifest']));
    expect(manifest.stages.map((s) => s.name)).toEqual([
      'bootstrap',
      'rootfs',
      'initramfs',
      'finish',
      'manifest',
    ]);
  });

  it('is named by the current recipe hash and listed as current', () => {
    expect(basename(dir)).toBe(`base-amd64-${store.recipeHash('base').slice(0, 12)}`);
    expect(manifest.recipeHash).toBe(store.recipeHash('base'));
    const info = store.list().find((i) => i.dir === dir);
    expect(info?.status).toBe('current');
  });

  it('contains the packages the agent needs and no sudo', () => {
    for (const p of [
      'openssh-server',
      'python3',
      'git',
      'socat',
      'curl',
      'busybox-static',
      'iproute2',
      'bash',
    ]) {
      expect(manifest.packages[p], p).toMatch(/\S/);
    }
    expect(manifest.packages.sudo).toBeUndefined();
    expect(manifest.packages.systemd).toBeUndefined();
    expect(manifest.kernelVersion).toMatch(/^\d+\.\d+/);
  });

  it('lists the initramfs modules the guest contract needs, dependencies first', () => {
    const mods = readFileSync(join(dir, 'modules.list'), 'utf8').trim().split('\n');
    for (const m of [
      'virtio_mmio',
      'virtio_blk',
      'virtio_net',
      '9pnet_virtio',
      '9p',
      'virtiofs',
      'overlay',
      'ext4',
    ]) {
      expect(mods, m).toContain(m);
    }
    expect(mods.indexOf('jbd2')).toBeLessThan(mods.indexOf('ext4'));
    expect(mods.indexOf('9pnet')).toBeLessThan(mods.indexOf('9pnet_virtio'));
    expect(mods.indexOf('crc32c_generic')).toBeLessThan(mods.indexOf('libcrc32c'));
  });

  it('has a sha256 and size for every file that match the files', async () => {
    // amd64 also carries the kernel uncompressed (vmlinux, for QEMU's PVH boot).
    const want = manifest.arch === 'amd64' ? [...IMAGE_FILES, 'vmlinux'] : [...IMAGE_FILES];
    expect(Object.keys(manifest.files).sort()).toEqual(want.sort());
    for (const [file, entry] of Object.entries(manifest.files)) {
      const path = join(dir, file);
      expect(statSync(path).size, file).toBe(entry.size);
      expect(await sha256File(path), file).toBe(entry.sha256);
    }
    const r = await store.resolve('base');
    expect(r.boot.rootfs).toBe(join(dir, 'rootfs.ext4'));
  });

  it('a second build is a cache hit', async () => {
    const again = await store.build('base');
    expect(again).toMatchObject({ dir, built: false });
  });
});

describe('a corrupted copy', () => {
  let cache: string;
  beforeAll(() => {
    cache = mkdtempSync(join(tmpdir(), 'cowork-image-copy-'));
  });
  afterAll(() => rmSync(cache, { recursive: true, force: true }));

  it('is detected by resolve, naming the file and the fix', async () => {
    const copyStore = new ImageStore({ cacheDir: cache, stateDir: cache, configDir: cache });
    const copy = join(cache, 'images', basename(dir));
    mkdirSync(copy, { recursive: true });
    for (const f of [...Object.keys(readManifest(dir)?.files ?? {}), 'manifest.json']) {
      copyFileSync(join(dir, f), join(copy, f));
    }
    await expect(copyStore.resolve('base')).resolves.toMatchObject({ dir: copy });

    // Flip one byte in the middle of the root filesystem: same size, different content.
    const path = join(copy, 'rootfs.ext4');
    const fd = openSync(path, 'r+');
    const at = Math.floor(statSync(path).size / 2);
    const buf = Buffer.alloc(1);
    readSync(fd, buf, 0, 1, at);
    buf[0] = (buf[0] ?? 0) ^ 0xff;
    writeSync(fd, buf, 0, 1, at);
    closeSync(fd);

    const err = await copyStore.resolve('base').catch((e: unknown) => e);
    expect(CoworkError.is(err, 'unavailable')).toBe(true);
    expect((err as Error).message).toBe(
      'image "base" is corrupted (sha256 mismatch on rootfs.ext4) — rebuild: cowork-vm image build base --force',
    );
  });
});
