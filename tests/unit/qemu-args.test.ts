import { describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import type { VmSpec } from '../../src/host/vm/driver.js';
import {
  buildQemuArgs,
  escapeOptionValue,
  kernelCmdline,
  type QemuHostConfig,
  qemuBinaryFor,
} from '../../src/host/vm/qemu/args.js';
import { testVmSpec } from '../helpers/vm-spec.js';

const spec = (over: Partial<VmSpec> = {}): VmSpec => testVmSpec(over);

function host(over: Partial<QemuHostConfig> = {}): QemuHostConfig {
  return {
    hostArch: 'x86_64',
    accel: 'tcg',
    shareMode: '9p',
    hostPorts: { 22: 40022 },
    qmpSocketPath: '/state/run/qmp.sock',
    consoleLogPath: '/state/run/console.log',
    ninePSecurityModel: 'none',
    ...over,
  };
}

/** Values of every occurrence of `flag` in args. */
function values(args: string[], flag: string): string[] {
  const out: string[] = [];
  args.forEach((a, i) => {
    if (a === flag) out.push(args[i + 1] ?? '');
  });
  return out;
}

function one(args: string[], flag: string): string {
  const v = values(args, flag);
  expect(v, `${flag} once`).toHaveLength(1);
  return v[0]!;
}

function expectInvalid(fn: () => unknown, pattern: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(CoworkError.is(caught, 'invalidArgument'), String(caught)).toBe(true);
  expect((caught as Error).message).toMatch(pattern);
}

describe('buildQemuArgs: machine and accelerator', () => {
  it('x86_64 under tcg uses microvm with -cpu max', () => {
    const { binary, args } = buildQemuArgs(spec(), host());
    expect(binary).toBe('qemu-system-x86_64');
    expect(one(args, '-M')).toBe('microvm');
    expect(one(args, '-accel')).toBe('tcg');
    expect(one(args, '-cpu')).toBe('max');
    expect(one(args, '-smp')).toBe('2');
    expect(one(args, '-m')).toBe('1024M');
  });

  it('x86_64 under kvm uses -cpu host', () => {
    const { args } = buildQemuArgs(spec(), host({ accel: 'kvm' }));
    expect(one(args, '-accel')).toBe('kvm');
    expect(one(args, '-cpu')).toBe('host');
  });

  it('aarch64 uses virt, ttyAMA0 and the aarch64 binary; hvf uses -cpu host', () => {
    const s = spec({ image: { ...spec().image, arch: 'aarch64' } });
    const { binary, args } = buildQemuArgs(s, host({ hostArch: 'aarch64', accel: 'hvf' }));
    expect(binary).toBe('qemu-system-aarch64');
    expect(one(args, '-M')).toBe('virt');
    expect(one(args, '-accel')).toBe('hvf');
    expect(one(args, '-cpu')).toBe('host');
    expect(one(args, '-append')).toContain('console=ttyAMA0');
    expect(one(args, '-append')).not.toContain('ttyS0');
  });

  it('aarch64 guest on an x86_64 host works under tcg only', () => {
    const s = spec({ image: { ...spec().image, arch: 'aarch64' } });
    const { args } = buildQemuArgs(s, host({ accel: 'tcg' }));
    expect(one(args, '-cpu')).toBe('max');
    expectInvalid(
      () => buildQemuArgs(s, host({ accel: 'kvm' })),
      /cannot run a aarch64 guest on a x86_64 host/,
    );
  });

  it('qemuBinary overrides the binary', () => {
    expect(buildQemuArgs(spec(), host({ qemuBinary: '/opt/q/bin/qemu' })).binary).toBe('/opt/q/bin/qemu');
    expect(qemuBinaryFor('aarch64')).toBe('qemu-system-aarch64');
  });

  it('rejects absurd cpu and memory values', () => {
    expectInvalid(() => buildQemuArgs(spec({ cpus: 0 }), host()), /cpus/);
    expectInvalid(() => buildQemuArgs(spec({ cpus: 1.5 }), host()), /cpus/);
    expectInvalid(() => buildQemuArgs(spec({ memoryMiB: 64 }), host()), /memoryMiB/);
  });
});

describe('buildQemuArgs: no stdin, no window, console and QMP to files', () => {
  const { args } = buildQemuArgs(spec(), host());

  it('sets -nodefaults -no-user-config -nographic -display none -no-reboot', () => {
    for (const f of ['-nodefaults', '-no-user-config', '-nographic', '-no-reboot']) expect(args).toContain(f);
    expect(one(args, '-display')).toBe('none');
  });

  it('uses modern virtio-mmio (vhost-user-fs refuses legacy devices)', () => {
    expect(one(args, '-global')).toBe('virtio-mmio.force-legacy=false');
  });

  it('sends the serial console to a file chardev and never to stdio', () => {
    expect(one(args, '-serial')).toBe('chardev:con');
    expect(values(args, '-chardev')).toContain('file,id=con,path=/state/run/console.log');
    expect(args.join(' ')).not.toMatch(/stdio/);
    expect(args).not.toContain('-monitor');
  });

  it('puts QMP on the unix socket without waiting for a client', () => {
    expect(one(args, '-qmp')).toBe('unix:/state/run/qmp.sock,server=on,wait=off');
  });
});

describe('buildQemuArgs: disks and shares', () => {
  it('attaches the rootfs read-only as the first and only virtio-blk disk', () => {
    const { args } = buildQemuArgs(spec(), host());
    expect(one(args, '-drive')).toBe('id=root,file=/img/rootfs.ext4,format=raw,if=none,readonly=on');
    const devices = values(args, '-device');
    expect(devices[0]).toBe('virtio-blk-device,drive=root');
    expect(devices.filter((d) => d.startsWith('virtio-blk'))).toHaveLength(1);
    expect(one(args, '-kernel')).toBe('/img/vmlinuz');
    expect(one(args, '-initrd')).toBe('/img/initrd.img');
  });

  it('boots the uncompressed PVH kernel when the image has one, but the bzImage in the vz profile', () => {
    const image = {
      kernel: '/img/vmlinuz',
      pvhKernel: '/img/vmlinux',
      initrd: '/img/initrd.img',
      rootfs: '/img/rootfs.ext4',
      arch: 'x86_64' as const,
    };
    expect(one(buildQemuArgs(spec({ image }), host()).args, '-kernel')).toBe('/img/vmlinux');
    const vzHost = host({
      shareMode: 'virtiofs',
      virtiofsSocketPath: '/state/run/virtiofs.sock',
      seedVirtiofsSocketPath: '/state/run/virtiofs-seed.sock',
    });
    expect(
      one(buildQemuArgs(spec({ image, deviceProfile: 'vz', shareMode: 'virtiofs' }), vzHost).args, '-kernel'),
    ).toBe('/img/vmlinuz');
  });

  it('sets the virtiofs queue size only when the bench asks, and refuses a size QEMU would not take', () => {
    const vfsHost = host({ shareMode: 'virtiofs', virtiofsSocketPath: '/state/run/virtiofs.sock' });
    const fsDevice = (over: Partial<VmSpec>) =>
      values(buildQemuArgs(spec({ shareMode: 'virtiofs', ...over }), vfsHost).args, '-device').find((d) =>
        d.startsWith('vhost-user-fs'),
      );
    expect(fsDevice({})).toBe('vhost-user-fs-device,chardev=vfs,tag=workspace');
    expect(fsDevice({ shareTuning: { virtiofsQueueSize: 1024 } })).toBe(
      'vhost-user-fs-device,chardev=vfs,tag=workspace,queue-size=1024',
    );
    expectInvalid(
      () => fsDevice({ shareTuning: { virtiofsQueueSize: 1000 } }),
      /virtiofsQueueSize must be a power of two/,
    );
  });

  it('9p workspace is read-write and seed is read-only, both with the given security model', () => {
    const { args } = buildQemuArgs(spec(), host({ ninePSecurityModel: 'none' }));
    expect(values(args, '-fsdev')).toEqual([
      'local,id=ws,path=/home/u/project,security_model=none',
      'local,id=seed,path=/state/seed,security_model=none,readonly=on',
    ]);
    expect(values(args, '-device')).toContain('virtio-9p-device,fsdev=ws,mount_tag=workspace');
    expect(values(args, '-device')).toContain('virtio-9p-device,fsdev=seed,mount_tag=seed');
    expect(args).not.toContain('-object');
  });

  it('passthrough security model is passed through (root)', () => {
    const { args } = buildQemuArgs(spec(), host({ ninePSecurityModel: 'passthrough' }));
    for (const f of values(args, '-fsdev')) expect(f).toContain('security_model=passthrough');
  });

  it('a read-only workspace is mounted read-only', () => {
    const s = spec({ workspace: { tag: 'workspace', hostPath: '/w', readOnly: true } });
    expect(values(buildQemuArgs(s, host()).args, '-fsdev')[0]).toBe(
      'local,id=ws,path=/w,security_model=none,readonly=on',
    );
  });

  it('the seed share stays read-only even if the spec says otherwise', () => {
    const s = spec({ seed: { tag: 'seed', hostPath: '/state/seed', readOnly: false } });
    expect(values(buildQemuArgs(s, host()).args, '-fsdev')[1]).toContain('readonly=on');
  });

  it('virtiofs uses vhost-user-fs with a shared memfd backend as machine memory; seed stays 9p', () => {
    const { args } = buildQemuArgs(
      spec(),
      host({ shareMode: 'virtiofs', virtiofsSocketPath: '/run/vfs.sock' }),
    );
    expect(one(args, '-M')).toBe('microvm,memory-backend=mem');
    expect(one(args, '-object')).toBe('memory-backend-memfd,id=mem,size=1024M,share=on');
    expect(values(args, '-chardev')).toContain('socket,id=vfs,path=/run/vfs.sock');
    expect(values(args, '-device')).toContain('vhost-user-fs-device,chardev=vfs,tag=workspace');
    expect(values(args, '-fsdev')).toEqual([
      'local,id=seed,path=/state/seed,security_model=none,readonly=on',
    ]);
    expect(one(args, '-append')).toContain('cowork.share=virtiofs');
  });

  it('virtiofs on aarch64 puts the backend on the virt machine', () => {
    const s = spec({ image: { ...spec().image, arch: 'aarch64' } });
    const h = host({ hostArch: 'aarch64', shareMode: 'virtiofs', virtiofsSocketPath: '/run/vfs.sock' });
    expect(one(buildQemuArgs(s, h).args, '-M')).toBe('virt,memory-backend=mem');
  });

  it('virtiofs without a socket path is refused', () => {
    expectInvalid(() => buildQemuArgs(spec(), host({ shareMode: 'virtiofs' })), /virtiofsSocketPath/);
  });

  it('commas in paths are escaped so they cannot inject options', () => {
    const s = spec({ workspace: { tag: 'workspace', hostPath: '/w/a,readonly=off,x', readOnly: true } });
    const fsdev = values(buildQemuArgs(s, host()).args, '-fsdev')[0]!;
    expect(fsdev).toBe('local,id=ws,path=/w/a,,readonly=off,,x,security_model=none,readonly=on');
    expect(escapeOptionValue('a,b,,c')).toBe('a,,b,,,,c');
  });

  it('rejects relative paths, newlines, bad or duplicate tags', () => {
    expectInvalid(
      () => buildQemuArgs(spec({ image: { ...spec().image, rootfs: 'rootfs.ext4' } }), host()),
      /rootfs/,
    );
    expectInvalid(
      () =>
        buildQemuArgs(spec({ workspace: { tag: 'workspace', hostPath: '/a\nb', readOnly: false } }), host()),
      /workspace/,
    );
    expectInvalid(
      () => buildQemuArgs(spec({ workspace: { tag: 'ws,x=1', hostPath: '/a', readOnly: false } }), host()),
      /tag/,
    );
    expectInvalid(
      () => buildQemuArgs(spec({ workspace: { tag: 'seed', hostPath: '/a', readOnly: false } }), host()),
      /share the tag/,
    );
  });
});

describe('buildQemuArgs: network', () => {
  it('has exactly one user-mode netdev with restrict=on and only the SSH hostfwd on 127.0.0.1', () => {
    const { args } = buildQemuArgs(spec(), host({ hostPorts: { 22: 41234 } }));
    expect(one(args, '-netdev')).toBe('user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:41234-:22');
    expect(values(args, '-device')).toContain('virtio-net-device,netdev=net0');
    expect(values(args, '-device').filter((d) => d.includes('net'))).toHaveLength(1);
  });

  it('no stray network options: no guestfwd, smb, tftp, bootfile, dns or -net', () => {
    const joined = buildQemuArgs(spec(), host()).args.join(' ');
    for (const bad of ['guestfwd', 'smb', 'tftp', 'bootfile', 'dnssearch', 'hostname=', 'ipv6', '0.0.0.0']) {
      expect(joined).not.toContain(bad);
    }
    expect(buildQemuArgs(spec(), host()).args).not.toContain('-net');
  });

  it('forwards every requested guest port, each on 127.0.0.1', () => {
    const { args } = buildQemuArgs(
      spec({ guestPorts: [22, 9222] }),
      host({ hostPorts: { 22: 40001, 9222: 40002 } }),
    );
    expect(one(args, '-netdev')).toBe(
      'user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:40001-:22,hostfwd=tcp:127.0.0.1:40002-:9222',
    );
  });

  it('refuses missing, extra or invalid port mappings', () => {
    expectInvalid(() => buildQemuArgs(spec({ guestPorts: [22, 80] }), host()), /guest port 80/);
    expectInvalid(() => buildQemuArgs(spec(), host({ hostPorts: { 22: 1, 80: 2 } })), /not in the spec: 80/);
    expectInvalid(() => buildQemuArgs(spec(), host({ hostPorts: { 22: 70000 } })), /host port 70000/);
    expectInvalid(
      () => buildQemuArgs(spec({ guestPorts: [] }), host({ hostPorts: {} })),
      /guestPorts is empty/,
    );
  });

  it('refuses an egress relay: the guest has no outbound rule, its proxy travels over SSH', () => {
    const s = spec({ egress: { hostPort: 38080, guestAddress: '10.0.2.100', guestPort: 3128 } });
    expectInvalid(() => buildQemuArgs(s, host()), /does not relay egress/);
  });
});

describe('kernel command line', () => {
  it('follows the guest contract and appends extra words', () => {
    expect(kernelCmdline(spec({ kernelArgs: ['loglevel=4'] }), '9p')).toBe(
      'console=ttyS0 quiet panic=-1 cowork.root=/dev/vda cowork.share=9p loglevel=4',
    );
  });

  it('under tcg on an x86_64 host, pins the TSC rate so a busy host cannot stall calibration', () => {
    expect(one(buildQemuArgs(spec(), host({ tscKhz: 2596148 })).args, '-append')).toBe(
      'console=ttyS0 quiet panic=-1 cowork.root=/dev/vda cowork.share=9p tsc_early_khz=2596148',
    );
  });

  it('does not pin the TSC under kvm, for aarch64 guests, or when the rate is unknown', () => {
    expect(one(buildQemuArgs(spec(), host({ accel: 'kvm', tscKhz: 2596148 })).args, '-append')).not.toContain(
      'tsc',
    );
    const arm = spec({ image: { ...spec().image, arch: 'aarch64' } });
    expect(one(buildQemuArgs(arm, host({ tscKhz: 2596148 })).args, '-append')).not.toContain('tsc');
    expect(one(buildQemuArgs(spec(), host({ tscKhz: undefined })).args, '-append')).not.toContain('tsc');
    expect(one(buildQemuArgs(spec(), host({ tscKhz: 1.5 })).args, '-append')).not.toContain('tsc');
  });

  it('refuses kernel words with spaces (they would split into several)', () => {
    expectInvalid(() => buildQemuArgs(spec({ kernelArgs: ['a b'] }), host()), /kernel argument/);
  });
});
