import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
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
import type { HostPaths } from '../../src/host/paths.js';
import { defaultRecipeRoot } from '../../src/host/vm/image-recipe.js';
import { ImageStore } from '../../src/host/vm/images.js';

// ImageStore's side of a build (temp folder, progress, manifest, atomic install, failures,
// cancel) with a quick stand-in for build-image.sh that speaks the same stdout protocol. The
// real script is exercised by tests/integration/image-build.test.ts.
let root: string;
let paths: HostPaths;

const STUB_OK = `#!/bin/bash
set -eu
while [ $# -gt 0 ]; do case "$1" in --out) out="$2"; shift 2 ;; *) shift ;; esac; done
echo "STAGE bootstrap pretend mmdebstrap"
echo "I: some mmdebstrap log line"
echo "STAGE-DONE bootstrap 1.5"
echo "STAGE rootfs pretend mke2fs"
printf 'rootfs' >"$out/rootfs.ext4"; printf 'initrd' >"$out/initrd.img"
# the build checks the kernel's format: an x86 bzImage header ("HdrS" at 0x202)
{ head -c 514 /dev/zero; printf 'HdrS'; } >"$out/vmlinuz"
# and, on amd64, the uncompressed kernel: an x86-64 ELF (e_machine 62 at offset 18)
{ printf '\\177ELF\\002\\001\\001'; head -c 11 /dev/zero; printf '\\076'; head -c 45 /dev/zero; } >"$out/vmlinux"
printf 'ext4\\n' >"$out/modules.list"; printf 'git\\t1:2.39\\nopenssh-server\\t1:9.2p1\\n' >"$out/packages.tsv"
echo 6.1.0-test >"$out/kernel-version"
echo "STAGE-DONE rootfs 0.5"
`;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'cowork-imgbuild-'));
  cpSync(join(defaultRecipeRoot(), 'images'), join(root, 'recipe', 'images'), { recursive: true });
  cpSync(join(defaultRecipeRoot(), 'src', 'guest'), join(root, 'recipe', 'src', 'guest'), {
    recursive: true,
  });
  paths = { cacheDir: join(root, 'cache'), stateDir: join(root, 'state'), configDir: join(root, 'config') };
});

afterEach(() => rmSync(root, { recursive: true, force: true }));

function withScript(text: string): ImageStore {
  const p = join(root, 'recipe', 'images', 'build-image.sh');
  writeFileSync(p, text);
  chmodSync(p, 0o755);
  return new ImageStore(paths, { recipeRoot: join(root, 'recipe') });
}

describe('ImageStore.build', () => {
  it('reports stages, writes the manifest, installs the folder and then reuses it', async () => {
    const s = withScript(STUB_OK);
    const events: string[] = [];
    const logs: string[] = [];
    const r = await s.build('base', {
      arch: 'amd64',
      onProgress: (stage, msg) => events.push(`${stage}: ${msg}`),
      onLog: (l) => logs.push(l),
    });
    expect(r.built).toBe(true);
    expect(r.dir).toBe(s.imageDir('base', 'amd64'));
    expect(events).toEqual([
      'bootstrap: pretend mmdebstrap',
      'bootstrap: done in 1.5 s',
      'rootfs: pretend mke2fs',
      'rootfs: done in 0.5 s',
      'manifest: checksums and manifest.json',
      expect.stringMatching(/^manifest: done in \d+\.\d s$/),
    ]);
    expect(logs).toEqual(['I: some mmdebstrap log line']);
    expect(r.manifest).toMatchObject({
      name: 'base',
      arch: 'amd64',
      recipeHash: s.recipeHash('base', 'amd64'),
      kernelVersion: '6.1.0-test',
      packages: { git: '1:2.39', 'openssh-server': '1:9.2p1' },
    });
    expect(r.manifest.stages.map((x) => x.name)).toEqual(['bootstrap', 'rootfs', 'manifest']);
    expect(r.manifest.files['rootfs.ext4']).toEqual({
      size: 6,
      sha256: createHash('sha256').update('rootfs').digest('hex'),
    });
    expect(readdirSync(join(paths.cacheDir, 'images')).filter((d) => d.startsWith('.tmp'))).toEqual([]);
    await expect(s.resolve('base', 'amd64')).resolves.toMatchObject({ dir: r.dir });

    const again = await s.build('base', { arch: 'amd64' });
    expect(again.built).toBe(false);
    const forced = await s.build('base', { arch: 'amd64', force: true });
    expect(forced.built).toBe(true);
    expect(s.list()).toHaveLength(1);
  });

  it('a failing build leaves no image, keeps the log and says where it is', async () => {
    const s = withScript(
      '#!/bin/bash\necho "STAGE bootstrap x"\necho "E: Unable to locate package nosuch" >&2\nexit 1\n',
    );
    const err = await s.build('base', { arch: 'amd64' }).catch((e: unknown) => e);
    expect(CoworkError.is(err, 'internal')).toBe(true);
    const log = join(paths.cacheDir, 'images', 'build-base-amd64.log');
    expect((err as Error).message).toContain(`image build of base (amd64) failed (exit 1); full log: ${log}`);
    expect((err as Error).message).toContain('E: Unable to locate package nosuch');
    expect(readFileSync(log, 'utf8')).toContain('E: Unable to locate package nosuch');
    expect(s.list()).toEqual([]);
    expect(existsSync(s.imageDir('base', 'amd64'))).toBe(false);
  });

  it('a build that needs root as an ordinary user says so', async () => {
    const s = withScript('#!/bin/bash\necho "build-image: ... run the image build as root" >&2\nexit 77\n');
    const err = await s.build('base', { arch: 'amd64' }).catch((e: unknown) => e);
    expect(CoworkError.is(err, 'unavailable')).toBe(true);
    expect((err as Error).message).toMatch(/run the build as root/);
  });

  it('cancels: the script is killed and nothing is installed', async () => {
    const s = withScript('#!/bin/bash\necho "STAGE bootstrap slow"\nsleep 30\n');
    const ac = new AbortController();
    const p = s.build('base', {
      arch: 'amd64',
      signal: ac.signal,
      onProgress: (stage) => {
        if (stage === 'bootstrap') ac.abort();
      },
    });
    const err = await p.catch((e: unknown) => e);
    expect(CoworkError.is(err, 'cancelled')).toBe(true);
    expect(s.list()).toEqual([]);
    expect(readdirSync(join(paths.cacheDir, 'images')).filter((d) => d.startsWith('.tmp'))).toEqual([]);
  });
});
