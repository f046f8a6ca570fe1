import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageStore } from '../../src/host/vm/images.js';
import { assertBuilt, cli } from '../helpers/cli.js';
import { syntheticImage } from '../helpers/image-archive.js';

// `cowork-vm image export` on one host, `image import` on another, through the built binary:
// two cache dirs stand for the Linux builder and the Mac. The image is small and synthetic but
// carries this checkout's real recipe hash, so the installed binary accepts it as current.
let root: string;
let linux: NodeJS.ProcessEnv;
let mac: NodeJS.ProcessEnv;

function envFor(name: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: join(root, name),
    COWORK_VM_CACHE_DIR: join(root, name, 'cache'),
    COWORK_VM_STATE_DIR: join(root, name, 'state'),
    COWORK_VM_CONFIG_DIR: join(root, name, 'config'),
  };
}

beforeAll(async () => {
  assertBuilt();
  root = mkdtempSync(join(tmpdir(), 'cowork-imgcli-'));
  linux = envFor('linux');
  mac = envFor('mac');
  const builder = new ImageStore({
    cacheDir: linux.COWORK_VM_CACHE_DIR as string,
    stateDir: linux.COWORK_VM_STATE_DIR as string,
    configDir: linux.COWORK_VM_CONFIG_DIR as string,
  });
  await syntheticImage(builder, 'base', 'arm64');
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('cowork-vm image export / import (built binary)', () => {
  it('export --json writes the archive and reports its size, sha256 and recipe', () => {
    const file = join(root, 'base-arm64.tar.gz');
    const r = cli(['image', 'export', 'base', '--arch', 'arm64', '--output', file, '--json'], linux);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    const bytes = readFileSync(file);
    expect(out).toEqual({
      file,
      bytes: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      name: 'base',
      arch: 'arm64',
      recipeHash: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    expect(r.stderr).toMatch(/rootfs\.ext4\s+100%/);
  });

  it('import --json installs it on the other host, and image ls lists it as current', () => {
    const file = join(root, 'base-arm64.tar.gz');
    const r = cli(['image', 'import', file, '--json'], mac);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { dir: string; installed: boolean; name: string; arch: string };
    expect(out).toMatchObject({ name: 'base', arch: 'arm64', installed: true });
    expect(out.dir.startsWith(join(mac.COWORK_VM_CACHE_DIR as string, 'images', 'base-arm64-'))).toBe(true);
    const ls = JSON.parse(cli(['image', 'ls', '--json'], mac).stdout) as { status: string; arch: string }[];
    expect(ls).toEqual([expect.objectContaining({ arch: 'arm64', status: 'current' })]);
    const again = cli(['image', 'import', file], mac);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/already installed and intact; kept/);
  });

  it('a corrupted archive exits 64, names the file and leaves the cache as it was', () => {
    const file = join(root, 'bad.tar');
    const ok = cli(['image', 'export', 'base', '--arch', 'arm64', '--output', file], linux);
    expect(ok.code, ok.stderr).toBe(0);
    const tar = readFileSync(file);
    const at = tar.indexOf(Buffer.from('rootfs.ext4\0')) + 512 + 99;
    tar[at] = (tar[at] ?? 0) ^ 0x80;
    writeFileSync(file, tar);
    const fresh = envFor('mac2');
    const r = cli(['image', 'import', file], fresh);
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(
      /cowork-vm: rootfs\.ext4 in the archive does not match the sha256 in its manifest/,
    );
    const images = join(fresh.COWORK_VM_CACHE_DIR as string, 'images');
    expect(existsSync(images) ? readdirSync(images) : []).toEqual([]);
  });

  it('export of an image that is not built exits 66 and names the build command', () => {
    const r = cli(['image', 'export', 'browser', '--arch', 'arm64'], linux);
    expect(r.code).toBe(66);
    expect(r.stderr).toMatch(
      /no current image "browser" \(arm64\) to export — run: cowork-vm image build browser --arch arm64/,
    );
  });
});
