import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import { requireForeignExec } from '../../src/host/vm/image-build.js';
import { defaultRecipeRoot } from '../../src/host/vm/image-recipe.js';
import { ImageStore } from '../../src/host/vm/images.js';

// The checks around images/build-image.sh: a foreign-arch build needs qemu-user in binfmt_misc
// (checked before the script runs), and what the script produced must be a kernel VZ and
// QEMU's direct boot load (checked before the image is installed).
let root: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'cowork-imgcheck-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function binfmt(entries: Record<string, string>): string {
  const dir = join(root, 'binfmt_misc');
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(entries)) writeFileSync(join(dir, name), text);
  return dir;
}

describe('requireForeignExec', () => {
  it('a same-arch build needs nothing', () => {
    expect(() => requireForeignExec('amd64', join(root, 'none'), 'amd64')).not.toThrow();
  });

  it('an arm64 build on amd64 passes with an enabled qemu-aarch64 entry', () => {
    const dir = binfmt({ 'qemu-aarch64': 'enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\n' });
    expect(() => requireForeignExec('arm64', dir, 'amd64')).not.toThrow();
  });

  it('a missing or disabled entry fails with what to run', () => {
    for (const dir of [binfmt({}), binfmt({ 'qemu-aarch64': 'disabled\n' })]) {
      let caught: unknown;
      try {
        requireForeignExec('arm64', dir, 'amd64');
      } catch (err) {
        caught = err;
      }
      expect(CoworkError.is(caught, 'unavailable'), String(caught)).toBe(true);
      expect((caught as Error).message).toMatch(/qemu-aarch64.*setup-host\.sh --for image/s);
    }
  });

  it('an amd64 build on an arm64 host looks for qemu-x86_64', () => {
    expect(() => requireForeignExec('amd64', binfmt({}), 'arm64')).toThrow(/qemu-x86_64/);
  });
});

describe('the built kernel is checked before the image is installed', () => {
  function store(kernelBytes: string): ImageStore {
    const recipe = join(root, 'recipe');
    cpSync(join(defaultRecipeRoot(), 'images'), join(recipe, 'images'), { recursive: true });
    cpSync(join(defaultRecipeRoot(), 'src', 'guest'), join(recipe, 'src', 'guest'), { recursive: true });
    const script = join(recipe, 'images', 'build-image.sh');
    writeFileSync(
      script,
      `#!/bin/bash
set -eu
while [ $# -gt 0 ]; do case "$1" in --out) out="$2"; shift 2 ;; *) shift ;; esac; done
printf r >"$out/rootfs.ext4"; printf i >"$out/initrd.img"; ${kernelBytes} >"$out/vmlinuz"
printf 'ext4\\n' >"$out/modules.list"; printf 'git\\t1\\n' >"$out/packages.tsv"; echo 6.1 >"$out/kernel-version"
`,
    );
    chmodSync(script, 0o755);
    const paths = {
      cacheDir: join(root, 'cache'),
      stateDir: join(root, 'state'),
      configDir: join(root, 'cfg'),
    };
    return new ImageStore(paths, { recipeRoot: recipe });
  }

  it('a gzip-compressed arm64 kernel is refused and nothing is installed', async () => {
    const s = store("printf 'x' | gzip -c");
    const dir = binfmt({ 'qemu-aarch64': 'enabled\n' });
    await expect(s.build('base', { arch: 'arm64', binfmtDir: dir })).rejects.toThrow(
      /is a gzip file, not the arm64-image.*compressed/s,
    );
    expect(existsSync(s.imageDir('base', 'arm64'))).toBe(false);
  });

  it('a raw arm64 Image is installed', async () => {
    // "ARM\x64" at offset 56: the arm64 boot protocol's magic.
    const s = store("{ head -c 56 /dev/zero; printf 'ARM\\x64'; head -c 8 /dev/zero; }");
    const dir = binfmt({ 'qemu-aarch64': 'enabled\n' });
    const r = await s.build('base', { arch: 'arm64', binfmtDir: dir });
    expect(r.built).toBe(true);
  });
});
