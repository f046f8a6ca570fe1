import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import { IMAGE_FILES, type ImageManifest, readManifest } from '../../src/host/vm/image-manifest.js';
import { defaultRecipeRoot } from '../../src/host/vm/image-recipe.js';
import { ImageStore } from '../../src/host/vm/images.js';
import { type CraftedEntry, craftArchive, syntheticImage } from '../helpers/image-archive.js';

// Export → import between two caches of the same recipe, and imports of archives an attacker
// wrote: each must be refused with a message naming the problem, leaving nothing in the cache.
let root: string;
let from: ImageStore;
let to: ImageStore;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'cowork-imgarchive-'));
  const recipe = join(root, 'recipe');
  cpSync(join(defaultRecipeRoot(), 'images'), join(recipe, 'images'), { recursive: true });
  cpSync(join(defaultRecipeRoot(), 'src', 'guest'), join(recipe, 'src', 'guest'), { recursive: true });
  const paths = (n: string) => ({
    cacheDir: join(root, n),
    stateDir: join(root, `${n}-state`),
    configDir: join(root, `${n}-config`),
  });
  from = new ImageStore(paths('linux-cache'), { recipeRoot: recipe });
  to = new ImageStore(paths('mac-cache'), { recipeRoot: recipe });
});

afterEach(() => rmSync(root, { recursive: true, force: true }));

/** Whatever the target cache's images folder holds (temp folders included). */
function leftovers(): string[] {
  return existsSync(to.dir) ? readdirSync(to.dir) : [];
}

async function refused(archive: Buffer, pattern: RegExp): Promise<CoworkError> {
  const file = join(root, 'crafted.tar');
  writeFileSync(file, archive);
  const err = await to.importArchive(file).catch((e: unknown) => e);
  expect(CoworkError.is(err, 'invalidArgument'), String(err)).toBe(true);
  expect((err as Error).message).toMatch(pattern);
  expect(leftovers()).toEqual([]);
  expect(existsSync(join(root, 'mac-cache', 'rootfs.ext4'))).toBe(false);
  return err as CoworkError;
}

/** The entries an honest export writes: manifest.json first, then each file. */
function honest(dir: string, manifest: ImageManifest): CraftedEntry[] {
  return [
    { name: 'manifest.json', content: JSON.stringify(manifest) },
    ...Object.keys(manifest.files).map((f) => ({ name: f, content: readFileSync(join(dir, f)) })),
  ];
}

describe('image export → import', () => {
  it.each(['tar.gz', 'tar'])('round-trips a .%s byte for byte into another cache', async (ext) => {
    const { dir, manifest } = await syntheticImage(from);
    const output = join(root, `out.${ext}`);
    const progress: string[] = [];
    const res = await from.exportArchive('base', {
      arch: 'amd64',
      output,
      onProgress: (p) => progress.push(`${p.file} ${p.done}/${p.total}`),
    });
    expect(res).toMatchObject({ file: output, name: 'base', arch: 'amd64', recipeHash: manifest.recipeHash });
    expect(res.bytes).toBe(readFileSync(output).length);
    expect(progress).toContain('rootfs.ext4 70001/70001');
    const raw = readFileSync(output);
    expect(raw.subarray(0, 2).equals(Buffer.from([0x1f, 0x8b]))).toBe(ext === 'tar.gz');
    // manifest.json is the first entry, so an importer can refuse a foreign image before the rootfs.
    const tar = ext === 'tar.gz' ? gunzipSync(raw) : raw;
    expect(tar.subarray(0, 13).toString()).toBe('manifest.json');

    const imp = await to.importArchive(output);
    expect(imp).toEqual({
      dir: to.imageDir('base', 'amd64'),
      name: 'base',
      arch: 'amd64',
      recipeHash: manifest.recipeHash,
      installed: true,
    });
    for (const f of IMAGE_FILES)
      expect(readFileSync(join(imp.dir, f)).equals(readFileSync(join(dir, f)))).toBe(true);
    expect(readManifest(imp.dir)).toEqual(manifest);
    expect(readFileSync(join(imp.dir, 'kernel-version'), 'utf8')).toBe('6.1.0-test-amd64\n');
    expect(to.list()).toEqual([expect.objectContaining({ name: 'base', arch: 'amd64', status: 'current' })]);
    await expect(to.resolve('base', 'amd64')).resolves.toMatchObject({ dir: imp.dir });
    expect(leftovers()).toEqual([basename(imp.dir)]);
  });

  it('names the archive after the image, is reproducible, and leaves no partial file', async () => {
    const { manifest } = await syntheticImage(from);
    const a = await from.exportArchive('base', { arch: 'amd64', cwd: root });
    expect(basename(a.file)).toBe(`cowork-vm-image-base-amd64-${manifest.recipeHash.slice(0, 12)}.tar.gz`);
    rmSync(a.file);
    const b = await from.exportArchive('base', { arch: 'amd64', cwd: root });
    expect(b.sha256).toBe(a.sha256);
    expect(readdirSync(root).filter((f) => f.includes('partial'))).toEqual([]);
  });

  it('imports an honest archive written by the system tar (GNU format, gzip)', async () => {
    const { dir } = await syntheticImage(from);
    const file = join(root, 'by-tar.tar.gz');
    const r = spawnSync('tar', ['-czf', file, '-C', dir, 'manifest.json', ...IMAGE_FILES]);
    expect(r.status, String(r.stderr)).toBe(0);
    expect((await to.importArchive(file)).installed).toBe(true);
    expect(to.list()).toEqual([expect.objectContaining({ status: 'current' })]);
  });

  it('refuses to export an image that is not built, naming the build command', async () => {
    const err = await from.exportArchive('base', { arch: 'arm64', cwd: root }).catch((e: unknown) => e);
    expect(CoworkError.is(err, 'notFound')).toBe(true);
    expect((err as Error).message).toMatch(
      /no current image "base" \(arm64\).*cowork-vm image build base --arch arm64/,
    );
  });

  it('refuses to export a stale image, saying only an older recipe is built', async () => {
    await syntheticImage(from, 'base', 'amd64', 'ab'.repeat(32));
    const err = await from.exportArchive('base', { arch: 'amd64', cwd: root }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/only builds of an older recipe exist/);
  });

  it('refuses to export a corrupted image and leaves no archive behind', async () => {
    const { dir } = await syntheticImage(from);
    const rootfs = readFileSync(join(dir, 'rootfs.ext4'));
    rootfs[40_000] = (rootfs[40_000] ?? 0) ^ 0xff;
    writeFileSync(join(dir, 'rootfs.ext4'), rootfs);
    const out = join(root, 'exports');
    mkdirSync(out);
    const err = await from.exportArchive('base', { arch: 'amd64', cwd: out }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(
      /corrupted: rootfs\.ext4 does not match its manifest sha256.*--force/,
    );
    expect(readdirSync(out)).toEqual([]);
  });

  it('keeps an intact installed image of the same recipe unless --force', async () => {
    await syntheticImage(from);
    const { file } = await from.exportArchive('base', { arch: 'amd64', cwd: root });
    expect((await to.importArchive(file)).installed).toBe(true);
    expect((await to.importArchive(file)).installed).toBe(false);
    expect((await to.importArchive(file, { force: true })).installed).toBe(true);
    expect(leftovers()).toEqual([basename(to.imageDir('base', 'amd64'))]);
  });

  it('sweeps the temp folder of an import whose process died, not one of a live process', async () => {
    await syntheticImage(from);
    const { file } = await from.exportArchive('base', { arch: 'amd64', cwd: root });
    const dead = join(to.dir, '.import-999999999-deadbeef'); // above any Linux pid_max
    const live = join(to.dir, `.import-${process.pid}-cafebabe`);
    for (const d of [dead, live]) mkdirSync(join(d), { recursive: true });
    writeFileSync(join(dead, 'rootfs.ext4'), 'half written');
    await to.importArchive(file);
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(live)).toBe(true);
  });

  it('a cancelled import removes its temp folder', async () => {
    await syntheticImage(from);
    const { file } = await from.exportArchive('base', { arch: 'amd64', cwd: root });
    const ac = new AbortController();
    const err = await to
      .importArchive(file, { signal: ac.signal, onProgress: () => ac.abort() })
      .catch((e: unknown) => e);
    expect(CoworkError.is(err, 'cancelled')).toBe(true);
    expect(leftovers()).toEqual([]);
  });
});

describe('image import refuses a tampered or hostile archive', () => {
  it('a corrupted byte in rootfs.ext4: names the file, leaves no folder and no temp', async () => {
    await syntheticImage(from);
    const { file } = await from.exportArchive('base', { arch: 'amd64', output: join(root, 'x.tar') });
    const tar = readFileSync(file);
    const at = tar.indexOf(Buffer.from('rootfs.ext4\0')) + 512 + 1234; // inside its content
    tar[at] = (tar[at] ?? 0) ^ 0x01;
    await refused(tar, /^rootfs\.ext4 in the archive does not match the sha256 in its manifest/);
  });

  it('a damaged gzip stream', async () => {
    await syntheticImage(from);
    const { file } = await from.exportArchive('base', { arch: 'amd64', output: join(root, 'x.tar.gz') });
    const gz = readFileSync(file);
    gz[Math.floor(gz.length / 2)] ^= 0xff;
    // A flipped byte inflates to different bytes (caught by the sha256) or breaks inflate itself.
    await refused(gz, /damaged \(gzip: |^rootfs\.ext4 in the archive does not match the sha256/);
    await refused(
      readFileSync(file).subarray(0, gz.length - 100),
      /is damaged \(gzip: unexpected end of file\) — export it again/,
    );
  });

  it('a manifest whose sha256 for a file is wrong', async () => {
    const { dir, manifest } = await syntheticImage(from);
    const bad = structuredClone(manifest);
    bad.files.vmlinuz = { size: manifest.files.vmlinuz?.size ?? 0, sha256: '0'.repeat(64) };
    const entries = honest(dir, manifest);
    entries[0] = { name: 'manifest.json', content: JSON.stringify(bad) };
    await refused(craftArchive(entries), /^vmlinuz in the archive does not match the sha256/);
  });

  it('a manifest that lists a file a build never writes', async () => {
    const { dir, manifest } = await syntheticImage(from);
    const extra = structuredClone(manifest);
    extra.files.authorized_keys = { size: 4, sha256: '1'.repeat(64) };
    const entries = honest(dir, manifest);
    entries[0] = { name: 'manifest.json', content: JSON.stringify(extra) };
    await refused(
      craftArchive([...entries, { name: 'authorized_keys', content: 'evil' }]),
      /manifest lists "authorized_keys", which is not an image file \(rootfs\.ext4, /,
    );
  });

  it('an extra file the manifest does not list', async () => {
    const { dir, manifest } = await syntheticImage(from);
    const entries = [...honest(dir, manifest), { name: 'authorized_keys', content: 'ssh-ed25519 AAAA evil' }];
    await refused(craftArchive(entries), /holds "authorized_keys", which its manifest does not list/);
    // Not fooled by names every object has.
    const proto = [...honest(dir, manifest), { name: 'constructor', content: '' }];
    await refused(craftArchive(proto), /holds "constructor", which its manifest does not list/);
  });

  it('a missing file', async () => {
    const { dir, manifest } = await syntheticImage(from);
    const entries = honest(dir, manifest).filter((e) => e.name !== 'initrd.img');
    await refused(craftArchive(entries), /missing initrd\.img that its manifest lists/);
  });

  it('a file twice', async () => {
    const { dir, manifest } = await syntheticImage(from);
    const entries = honest(dir, manifest);
    await refused(
      craftArchive([...entries, entries[2] as CraftedEntry]),
      /holds vmlinuz twice|holds .* twice/,
    );
  });

  it('a header size that differs from the manifest', async () => {
    const { dir, manifest } = await syntheticImage(from);
    const entries = honest(dir, manifest);
    const vm = entries.find((e) => e.name === 'vmlinuz') as CraftedEntry;
    vm.content = Buffer.concat([Buffer.from(vm.content ?? ''), Buffer.from('more')]);
    await refused(craftArchive(entries), /vmlinuz in the archive is 5004 bytes, its manifest says 5000/);
  });

  it.each([
    ['../rootfs.ext4', {}],
    ['/etc/cron.d/evil', {}],
    ['rootfs.ext4', { prefix: '..' }],
    ['sub/rootfs.ext4', {}],
    ['.hidden', {}],
  ])('a path that is not a plain file name: %s %j', async (name, extra) => {
    const { dir, manifest } = await syntheticImage(from);
    const entries = honest(dir, manifest);
    entries.splice(1, 0, { name, content: 'x', ...extra });
    await refused(craftArchive(entries), /is not a plain file name/);
  });

  it.each([
    ['2', 'a symbolic link', '/etc/passwd'],
    ['1', 'a hard link', '/etc/passwd'],
    ['3', 'a character device', ''],
    ['4', 'a block device', ''],
    ['5', 'a directory', ''],
    ['6', 'a FIFO', ''],
    ['x', 'a pax extended header', ''],
    ['L', 'a GNU long-name entry', ''],
  ])('an entry of type %s (%s)', async (type, what, linkname) => {
    const { dir, manifest } = await syntheticImage(from);
    const entries = honest(dir, manifest).filter((e) => e.name !== 'rootfs.ext4');
    entries.splice(1, 0, { name: 'rootfs.ext4', type, linkname });
    await refused(
      craftArchive(entries),
      new RegExp(`"rootfs.ext4" is ${what}; image archives hold only plain files`),
    );
  });

  it('a symlink made by the system tar (GNU format)', async () => {
    const { dir, manifest } = await syntheticImage(from);
    const stage = join(root, 'stage');
    mkdirSync(stage);
    cpSync(join(dir, 'manifest.json'), join(stage, 'manifest.json'));
    symlinkSync('/etc/passwd', join(stage, 'rootfs.ext4'));
    const out = join(root, 'gnu.tar');
    const r = spawnSync('tar', ['-cf', out, '-C', stage, 'manifest.json', 'rootfs.ext4']);
    expect(r.status, String(r.stderr)).toBe(0);
    expect(manifest.name).toBe('base');
    await refused(readFileSync(out), /"rootfs.ext4" is a symbolic link/);
  });

  it('a manifest of another recipe: names both hashes and says to export from the same version', async () => {
    const { dir, manifest } = await syntheticImage(from);
    const foreign = { ...manifest, recipeHash: 'cd'.repeat(32) };
    const entries = honest(dir, manifest);
    entries[0] = { name: 'manifest.json', content: JSON.stringify(foreign) };
    const ours = manifest.recipeHash.slice(0, 12);
    const err = await refused(
      craftArchive(entries),
      /built from recipe cdcdcdcdcdcd, but this cowork-vm builds base from recipe/,
    );
    expect(err.message).toContain(ours);
    expect(err.message).toContain('export it from the same cowork-vm version');
    // --force replaces an installed image; it does not bypass the recipe check.
    const file = join(root, 'crafted.tar');
    await expect(to.importArchive(file, { force: true })).rejects.toThrow(/built from recipe cdcdcdcdcdcd/);
    expect(leftovers()).toEqual([]);
  });

  it('an image name this checkout does not know', async () => {
    const { dir, manifest } = await syntheticImage(from);
    const entries = honest(dir, manifest);
    entries[0] = { name: 'manifest.json', content: JSON.stringify({ ...manifest, name: 'evil' }) };
    await refused(craftArchive(entries), /archive holds image "evil" \(amd64\): unknown image "evil"/);
  });

  it('a manifest that lists a path, or is not first, or is not a manifest', async () => {
    const { dir, manifest } = await syntheticImage(from);
    const entries = honest(dir, manifest);
    const pathy = structuredClone(manifest);
    pathy.files['../../.bashrc'] = { size: 1, sha256: '0'.repeat(64) };
    await refused(
      craftArchive([{ name: 'manifest.json', content: JSON.stringify(pathy) }, ...entries.slice(1)]),
      /manifest lists "..\/..\/.bashrc", which is not an image file \(/,
    );
    await refused(
      craftArchive([...entries.slice(1), entries[0] as CraftedEntry]),
      /first entry is "rootfs.ext4"/,
    );
    await refused(
      craftArchive([{ name: 'manifest.json', content: '{"schema":1}' }]),
      /not a valid image manifest/,
    );
    await refused(craftArchive([{ name: 'manifest.json', content: 'nope' }]), /not valid JSON/);
  });

  it('a truncated archive, an empty one, and one that is not a tar at all', async () => {
    const { dir, manifest } = await syntheticImage(from);
    const whole = craftArchive(honest(dir, manifest));
    await refused(whole.subarray(0, 40_000), /truncated inside rootfs\.ext4/);
    await refused(
      craftArchive(honest(dir, manifest), { end: false }),
      /truncated \(no end-of-archive marker\)/,
    );
    await refused(Buffer.alloc(1024), /archive is empty/);
    await refused(Buffer.from('x'.repeat(2048)), /not an octal number|checksum/);
  });
});
