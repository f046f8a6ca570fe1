import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { VmSpec } from '../../src/host/vm/driver.js';
import { buildQemuArgs, type QemuHostConfig } from '../../src/host/vm/qemu/args.js';
import { QEMU_GUEST_NETWORK } from '../../src/host/vm/qemu/user-net.js';
import {
  findSnapshot,
  snapshotFile,
  WARM_GO_PORT,
  warmKey,
  warmRefusal,
  warmShapedSpec,
} from '../../src/host/vm/qemu/warm.js';
import { testVmSpec } from '../helpers/vm-spec.js';

const dir = mkdtempSync(join(tmpdir(), 'cvm-warm-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const image = {
  kernel: join(dir, 'vmlinuz'),
  initrd: join(dir, 'initrd.img'),
  rootfs: join(dir, 'rootfs.ext4'),
  arch: 'x86_64' as const,
};
for (const f of [image.kernel, image.initrd, image.rootfs]) writeFileSync(f, 'x');
const cache = join(dir, 'cache.img');
writeFileSync(cache, Buffer.alloc(4096));

const host: QemuHostConfig = {
  hostArch: 'x86_64',
  accel: 'tcg',
  shareMode: '9p',
  hostPorts: {},
  qmpSocketPath: '/q',
  consoleLogPath: '/c',
  ninePSecurityModel: 'passthrough',
  tscKhz: 2_000_000,
};

const shaped = (over: Partial<VmSpec> = {}): VmSpec =>
  warmShapedSpec(testVmSpec({ image, ...over }), QEMU_GUEST_NETWORK);
const key = (over: Partial<VmSpec> = {}) => warmKey(shaped(over), host, '7.2.22');

describe('warm start: the snapshot key is the VM shape', () => {
  it('does not change with what only the host side sees (paths, ports, names)', async () => {
    const k = await key();
    expect(k).toMatch(/^[0-9a-f]{24}$/);
    expect(
      await key({
        name: 'another',
        workspace: { tag: 'workspace', hostPath: '/elsewhere/ws', readOnly: false },
        seed: { tag: 'seed', hostPath: '/elsewhere/seed', readOnly: true },
        runDir: '/elsewhere/run',
      }),
    ).toBe(k);
  });

  it('changes with anything the guest sees or QEMU migrates', async () => {
    const k = await key();
    const others = [
      await key({ memoryMiB: 2048 }),
      await key({ cpus: 1 }),
      await key({ kernelArgs: ['x=1'] }),
      await key({ cacheDisk: { path: cache } }),
      await warmKey(shaped(), { ...host, accel: 'kvm' }, '7.2.22'),
      await warmKey(shaped(), host, '8.0.0'),
    ];
    utimesSync(image.rootfs, new Date(), new Date(Date.now() + 5000)); // a rebuilt image
    others.push(await key());
    for (const o of others) expect(o).not.toBe(k);
    expect(new Set(others).size).toBe(others.length);
  });

  it('boots warm-capable guests with 9p, the go port and the warm point words', () => {
    const s = shaped({ shareMode: 'auto' });
    expect(s.shareMode).toBe('9p');
    expect(s.guestPorts).toEqual([22, WARM_GO_PORT]);
    expect(s.kernelArgs).toEqual([`cowork.warm=${WARM_GO_PORT}`, 'cowork.warm.addr=10.0.2.15/24']);
    const { args } = buildQemuArgs(s, {
      ...host,
      hostPorts: { 22: 4022, [WARM_GO_PORT]: 4023 },
      incoming: true,
    });
    expect(args.slice(-2)).toEqual(['-incoming', 'defer']);
    expect(args.join(' ')).toContain(`hostfwd=tcp:127.0.0.1:4023-:${WARM_GO_PORT}`);
    expect(buildQemuArgs(s, { ...host, hostPorts: { 22: 1, [WARM_GO_PORT]: 2 } }).args).not.toContain(
      '-incoming',
    );
  });

  it('refuses what cannot be migrated, with the reason', () => {
    expect(warmRefusal(testVmSpec({ shareMode: 'virtiofs' }))).toMatch(/vhost-user-fs/);
    expect(warmRefusal(testVmSpec({ deviceProfile: 'vz' }))).toMatch(/virtiofs/);
    expect(warmRefusal(testVmSpec({ shareMode: 'auto' }))).toBeUndefined();
  });
});

describe('warm start: finding the snapshot', () => {
  it('names a missing snapshot, and a stale one of another shape', async () => {
    const store = mkdtempSync(join(dir, 'store-'));
    const k = await key();
    expect(await findSnapshot(store, k)).toEqual({ reason: expect.stringMatching(/no warm snapshot/) });
    writeFileSync(snapshotFile(store, '0'.repeat(24)), 'x');
    expect(await findSnapshot(store, k)).toEqual({
      reason: expect.stringMatching(/another VM shape.*stale/),
    });
    writeFileSync(snapshotFile(store, k), '');
    expect('reason' in (await findSnapshot(store, k))).toBe(true); // empty: never a snapshot
    writeFileSync(snapshotFile(store, k), 'state');
    expect(await findSnapshot(store, k)).toEqual({ file: snapshotFile(store, k) });
  });
});
