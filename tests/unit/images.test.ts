import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import type { HostPaths } from '../../src/host/paths.js';
import {
  IMAGE_FILES,
  type ImageManifest,
  sha256File,
  writeManifest,
} from '../../src/host/vm/image-manifest.js';
import { defaultRecipeRoot, parseImageArch } from '../../src/host/vm/image-recipe.js';
import { ImageStore } from '../../src/host/vm/images.js';

// A copy of the real recipe (images/ + src/guest/) in a temp folder, so tests can edit it.
let root: string;
let paths: HostPaths;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'cowork-images-'));
  const real = defaultRecipeRoot();
  cpSync(join(real, 'images'), join(root, 'recipe', 'images'), { recursive: true });
  cpSync(join(real, 'src', 'guest'), join(root, 'recipe', 'src', 'guest'), { recursive: true });
  paths = { cacheDir: join(root, 'cache'), stateDir: join(root, 'state'), configDir: join(root, 'config') };
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

function store(env: NodeJS.ProcessEnv = {}): ImageStore {
  return new ImageStore(paths, { recipeRoot: join(root, 'recipe'), env });
}

function edit(rel: string, append: string): void {
  const p = join(root, 'recipe', rel);
  writeFileSync(p, readFileSync(p, 'utf8') + append);
}

/** Writes a fake but self-consistent image (files + manifest) where the current recipe expects it. */
async function fakeImage(s: ImageStore, name = 'base', arch = 'amd64' as const): Promise<string> {
  const dir = s.imageDir(name, arch);
  mkdirSync(dir, { recursive: true });
  const files: ImageManifest['files'] = {};
  for (const f of IMAGE_FILES) {
    writeFileSync(join(dir, f), `${f} content ${'x'.repeat(1000)}`);
    files[f] = { size: statSync(join(dir, f)).size, sha256: await sha256File(join(dir, f)) };
  }
  writeManifest(dir, {
    schema: 1,
    name,
    arch,
    suite: 'bookworm',
    recipeHash: s.recipeHash(name, arch),
    builtAt: new Date().toISOString(),
    kernelVersion: '6.1.0-test-amd64',
    packages: { 'openssh-server': '1:9.2p1' },
    files,
    stages: [{ name: 'bootstrap', seconds: 1 }],
    totalSeconds: 1,
  });
  return dir;
}

describe('recipe hash', () => {
  it('is stable and differs by name and arch', () => {
    const s = store();
    const h = s.recipeHash('base', 'amd64');
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(s.recipeHash('base', 'amd64')).toBe(h);
    expect(s.recipeHash('base', 'arm64')).not.toBe(h);
    expect(s.recipeHash('browser', 'amd64')).not.toBe(h);
    expect(s.recipeHash('base', 'x86_64')).toBe(h);
  });

  it.each([
    ['images/packages/base.list', 'htop\n'],
    ['images/build-image.sh', '# changed\n'],
    ['images/hooks/customize.sh', '# changed\n'],
    ['images/initramfs-modules.list', 'loop\n'],
    ['src/guest/cowork-init', '# changed\n'],
    ['src/guest/initramfs-init', '# changed\n'],
    ['src/guest/sshd_config', '# changed\n'],
  ])('changes when %s changes', (file, text) => {
    const s = store();
    const before = s.recipeHash('base', 'amd64');
    edit(file, text);
    expect(s.recipeHash('base', 'amd64')).not.toBe(before);
  });

  it('browser follows base through @include; base ignores browser', () => {
    const s = store();
    const base = s.recipeHash('base', 'amd64');
    const browser = s.recipeHash('browser', 'amd64');
    edit('images/packages/browser.list', 'fonts-noto-core\n');
    expect(s.recipeHash('base', 'amd64')).toBe(base);
    expect(s.recipeHash('browser', 'amd64')).not.toBe(browser);
    const browser2 = s.recipeHash('browser', 'amd64');
    edit('images/packages/base.list', 'htop\n');
    expect(s.recipeHash('browser', 'amd64')).not.toBe(browser2);
  });

  it('rejects unknown names, include loops and unknown arches', () => {
    const s = store();
    expect(() => s.recipeHash('nope', 'amd64')).toThrow(/unknown image "nope".*base, browser/);
    expect(() => s.recipeHash('../base', 'amd64')).toThrow(CoworkError);
    edit('images/packages/base.list', '@include browser\n');
    expect(() => s.recipeHash('browser', 'amd64')).toThrow(/includes itself/);
    expect(() => parseImageArch('riscv64')).toThrow(/amd64 or arm64/);
  });
});

describe('resolve and verify', () => {
  it('a missing image says how to build it', async () => {
    const err = await store()
      .resolve('base', 'amd64')
      .catch((e: unknown) => e);
    expect(CoworkError.is(err, 'notFound')).toBe(true);
    expect((err as Error).message).toBe('image "base" is not built — run: cowork-vm image build base');
  });

  it('returns the boot files of an intact image', async () => {
    const s = store();
    const dir = await fakeImage(s);
    const r = await s.resolve('base', 'amd64');
    expect(r.dir).toBe(dir);
    expect(r.boot).toEqual({
      kernel: join(dir, 'vmlinuz'),
      initrd: join(dir, 'initrd.img'),
      rootfs: join(dir, 'rootfs.ext4'),
      arch: 'x86_64',
    });
    expect(r.manifest.packages['openssh-server']).toBe('1:9.2p1');
  });

  it('detects a same-size change even when mtime is restored after a verified start', async () => {
    const s = store();
    const dir = await fakeImage(s);
    await s.resolve('base', 'amd64'); // writes the verified stamp
    const file = join(dir, 'rootfs.ext4');
    const st = statSync(file);
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, `Y${text.slice(1)}`);
    utimesSync(file, st.atime, st.mtime);
    const err = await s.resolve('base', 'amd64').catch((e: unknown) => e);
    expect(CoworkError.is(err, 'unavailable')).toBe(true);
    expect((err as Error).message).toBe(
      'image "base" is corrupted (sha256 mismatch on rootfs.ext4) — rebuild: cowork-vm image build base --force',
    );
  });

  it('detects a truncated or missing file', async () => {
    const s = store();
    const dir = await fakeImage(s);
    writeFileSync(join(dir, 'initrd.img'), '');
    rmSync(join(dir, 'vmlinuz'));
    await expect(s.resolve('base', 'amd64')).rejects.toThrow(/sha256 mismatch on vmlinuz, initrd.img/);
  });

  it('a tampered manifest is refused', async () => {
    const s = store();
    const dir = await fakeImage(s);
    writeFileSync(join(dir, 'manifest.json'), '{"schema":1,"name":"base"}');
    await expect(s.resolve('base', 'amd64')).rejects.toThrow(/not a valid image manifest/);
  });

  it('after a recipe change the old image is not resolved', async () => {
    const s = store();
    await fakeImage(s);
    edit('src/guest/cowork-init', '# new\n');
    await expect(s.resolve('base', 'amd64')).rejects.toThrow(/is not built/);
  });
});

describe('list, remove, build', () => {
  it('lists images as current or stale', async () => {
    const s = store();
    await fakeImage(s);
    await fakeImage(s, 'browser');
    edit('images/packages/browser.list', 'fonts-noto-core\n');
    const list = s.list();
    expect(list.map((i) => [i.name, i.arch, i.status])).toEqual([
      ['base', 'amd64', 'current'],
      ['browser', 'amd64', 'stale'],
    ]);
    expect(list[0]?.sizeBytes).toBeGreaterThan(5000);
    expect(list[0]?.hash).toBe(s.recipeHash('base', 'amd64'));
  });

  it('removes by folder and by name, and says when there is nothing', async () => {
    const s = store();
    const dir = await fakeImage(s);
    await fakeImage(s, 'browser');
    expect(s.remove(dir)).toEqual([dir]);
    expect(s.list().map((i) => i.name)).toEqual(['browser']);
    expect(s.remove('browser')).toHaveLength(1);
    expect(s.list()).toEqual([]);
    expect(() => s.remove('base')).toThrow(/no built image "base"/);
    expect(() => s.remove('/etc')).toThrow(CoworkError);
  });

  it('build reuses a complete image without running anything', async () => {
    const s = store({ PATH: '' });
    const dir = await fakeImage(s);
    const stages: string[] = [];
    const r = await s.build('base', { arch: 'amd64', onProgress: (st) => stages.push(st) });
    expect(r).toMatchObject({ dir, built: false });
    expect(stages).toEqual(['cached']);
  });

  it('build without mmdebstrap says to run setup-host.sh', async () => {
    const err = await store({ PATH: '' })
      .build('base', { arch: 'amd64' })
      .catch((e: unknown) => e);
    expect(CoworkError.is(err, 'unavailable')).toBe(true);
    expect((err as Error).message).toMatch(/mmdebstrap is not installed.*run scripts\/setup-host\.sh/);
  });
});
