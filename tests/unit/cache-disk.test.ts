import { closeSync, existsSync, mkdtempSync, openSync, readSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  cacheNameFor,
  ensureCacheDisk,
  listCacheDisks,
  removeCacheDisk,
} from '../../src/host/cache/index.js';
import { parseConfigText, validateConfig } from '../../src/host/config/index.js';
import type { HostPaths } from '../../src/host/paths.js';
import type { VmSpec } from '../../src/host/vm/driver.js';
import { buildQemuArgs, type QemuHostConfig } from '../../src/host/vm/qemu/args.js';
import { QemuDriver } from '../../src/host/vm/qemu/driver.js';
import { VZ_CAPABILITIES } from '../../src/host/vm/vz/driver.js';

function paths(): HostPaths {
  const root = mkdtempSync(join(tmpdir(), 'cache-disk-'));
  return { cacheDir: join(root, 'cache'), stateDir: join(root, 'state'), configDir: join(root, 'config') };
}

/** The ext4 superblock's magic (0xEF53 at byte 1024 + 56) and its volume label. */
function ext4Header(file: string): { magic: number; label: string } {
  const fd = openSync(file, 'r');
  const buf = Buffer.alloc(1024);
  readSync(fd, buf, 0, 1024, 1024);
  closeSync(fd);
  return {
    magic: buf.readUInt16LE(56),
    label: buf.subarray(120, 136).toString('latin1').replace(/\0+$/, ''),
  };
}

const owner = { uid: 1000, gid: 1000 };

describe('cache disks (real mke2fs, real files)', () => {
  it('creates a sparse ext4 file of the cap, named for the workspace, marked in use until released', () => {
    const p = paths();
    const ws = '/home/u/project';
    const { info, release } = ensureCacheDisk({ paths: p, workspace: ws, sizeGiB: 2, owner });
    expect(info.name).toBe(cacheNameFor(ws, undefined));
    expect(info.name).toMatch(/^ws-[0-9a-f]{16}$/);
    expect(info.sizeBytes).toBe(2 * 1024 ** 3);
    // Sparse: far less on the host's disk than the cap.
    expect(statSync(info.path).blocks * 512).toBeLessThan(info.sizeBytes / 20);
    expect(ext4Header(info.path)).toEqual({ magic: 0xef53, label: 'cowork-cache' });
    expect(info).toMatchObject({ kind: 'workspace', workspaces: [ws], inUseBy: process.pid });
    expect(() => removeCacheDisk(p, info.name)).toThrow(/in use by the running sandbox .*cowork-vm stop/);
    release();
    expect(listCacheDisks(p)[0]?.inUseBy).toBeUndefined();
    const gone = removeCacheDisk(p, info.name);
    expect(gone.name).toBe(info.name);
    expect(existsSync(info.path)).toBe(false);
    expect(listCacheDisks(p)).toEqual([]);
  });

  it('reuses the existing disk and never resizes it: a different cap is reported, not applied', () => {
    const p = paths();
    const first = ensureCacheDisk({ paths: p, workspace: '/w', sizeGiB: 1, owner });
    first.release();
    const notices: string[] = [];
    const again = ensureCacheDisk({
      paths: p,
      workspace: '/w',
      sizeGiB: 3,
      owner,
      onNotice: (l) => notices.push(l),
    });
    again.release();
    expect(again.info.path).toBe(first.info.path);
    expect(again.info.sizeBytes).toBe(1024 ** 3);
    expect(notices.join('\n')).toMatch(/never resized .*cowork-vm cache rm/);
  });

  it('a shared cache is one disk for every workspace naming it, and serves one sandbox at a time', () => {
    const p = paths();
    const a = ensureCacheDisk({ paths: p, workspace: '/a', shared: 'team', sizeGiB: 1, owner });
    expect(a.info).toMatchObject({ name: 'shared-team', kind: 'shared' });
    // Another live controller holds it: the marker names a live pid that is not this process.
    writeFileSync(join(p.stateDir, 'caches', 'shared-team.inuse'), `${process.ppid}\n`);
    expect(() => ensureCacheDisk({ paths: p, workspace: '/b', shared: 'team', sizeGiB: 1, owner })).toThrow(
      /in use by another running sandbox \(controller pid \d+\).*\[cache\] shared = ""/,
    );
    // A marker left by a dead controller does not hold it.
    writeFileSync(join(p.stateDir, 'caches', 'shared-team.inuse'), '999999999\n');
    const b = ensureCacheDisk({ paths: p, workspace: '/b', shared: 'team', sizeGiB: 1, owner });
    expect(b.info.workspaces).toEqual(['/a', '/b']);
    b.release();
    expect(listCacheDisks(p).map((c) => c.name)).toEqual(['shared-team']);
  });

  it('rm refuses names cowork-vm never makes (no paths) and unknown caches, saying what to do', () => {
    const p = paths();
    expect(() => removeCacheDisk(p, '../sandboxes/x')).toThrow(/is not one cowork-vm makes/);
    expect(() => removeCacheDisk(p, 'ws-0000')).toThrow(/no cache disk ws-0000 .*cache ls/);
  });
});

describe('[cache] config', () => {
  const check = (toml: string) => validateConfig(parseConfigText(toml, 'c.toml'), 'c.toml', {});
  it('defaults to a per-workspace 8 GiB disk; bad values name key, value and range', () => {
    expect(check('').cache).toEqual({ enabled: true, sizeGiB: 8, shared: '' });
    expect(() => check('[cache]\nsizeGiB = 0\n')).toThrow(/cache\.sizeGiB.*0.*1–1,024/s);
    expect(() => check('[cache]\nshared = "../x"\n')).toThrow(/cache\.shared.*must be empty/s);
  });
});

describe('drivers and the cache disk', () => {
  const spec: VmSpec = {
    name: 't',
    cpus: 1,
    memoryMiB: 512,
    image: { kernel: '/i/k', initrd: '/i/r', rootfs: '/i/root.ext4', arch: 'x86_64' },
    workspace: { tag: 'workspace', hostPath: '/w', readOnly: false },
    seed: { tag: 'seed', hostPath: '/s', readOnly: true },
    accel: 'tcg',
    guestPorts: [22],
    runDir: '/r',
  };
  const host: QemuHostConfig = {
    hostArch: 'x86_64',
    accel: 'tcg',
    shareMode: '9p',
    hostPorts: { 22: 40022 },
    qmpSocketPath: '/r/q.sock',
    consoleLogPath: '/r/c.log',
    ninePSecurityModel: 'none',
  };

  it('QEMU attaches it raw (no format probing of guest bytes), writable, found by serial; none without it', () => {
    const args = buildQemuArgs({ ...spec, cacheDisk: { path: '/st/caches/ws-1.ext4' } }, host).args;
    const drives = args.filter((_, i) => args[i - 1] === '-drive');
    expect(drives).toEqual([
      'id=root,file=/i/root.ext4,format=raw,if=none,readonly=on',
      'id=cache,file=/st/caches/ws-1.ext4,format=raw,if=none,discard=unmap',
    ]);
    expect(args).toContain('virtio-blk-device,drive=cache,serial=cowork-cache');
    expect(buildQemuArgs(spec, host).args.join(' ')).not.toContain('cache');
    // A comma in the path cannot add drive options.
    const odd = buildQemuArgs({ ...spec, cacheDisk: { path: '/st/a,readonly=off' } }, host).args;
    expect(odd).toContain('id=cache,file=/st/a,,readonly=off,format=raw,if=none,discard=unmap');
  });

  it('QEMU offers it; VZ does not (its bridge attaches one read-only disk)', () => {
    expect(new QemuDriver({ paths: paths() }).capabilities.cacheDisk).toBe(true);
    expect(VZ_CAPABILITIES.cacheDisk).toBe(false);
  });
});
