import { describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import type { VmSpec } from '../../src/host/vm/driver.js';
import { buildQemuArgs, kernelCmdline, type QemuHostConfig } from '../../src/host/vm/qemu/args.js';
import { virtiofsdCommand } from '../../src/host/vm/qemu/virtiofsd.js';
import { testVmSpec } from '../helpers/vm-spec.js';

/** The 'vz' device profile: QEMU reproducing Virtualization.framework's devices. */

const spec = (over: Partial<VmSpec> = {}): VmSpec =>
  testVmSpec({ name: 'vz-vm', deviceProfile: 'vz', ...over });

const arm = (over: Partial<VmSpec> = {}) => spec({ image: { ...spec().image, arch: 'aarch64' }, ...over });

function host(over: Partial<QemuHostConfig> = {}): QemuHostConfig {
  return {
    hostArch: 'x86_64',
    accel: 'tcg',
    shareMode: 'virtiofs',
    hostPorts: { 22: 40022 },
    qmpSocketPath: '/state/run/qmp.sock',
    consoleLogPath: '/state/run/console.log',
    virtiofsSocketPath: '/state/run/virtiofs.sock',
    seedVirtiofsSocketPath: '/state/run/virtiofs-seed.sock',
    ninePSecurityModel: 'none',
    ...over,
  };
}

function values(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1] ?? ''] : []));
}

function one(args: string[], flag: string): string {
  const v = values(args, flag);
  expect(v, `${flag} once`).toHaveLength(1);
  return v[0]!;
}

function invalid(fn: () => unknown): CoworkError {
  try {
    fn();
  } catch (err) {
    expect(CoworkError.is(err, 'invalidArgument'), String(err)).toBe(true);
    return err as CoworkError;
  }
  throw new Error('expected invalidArgument');
}

describe.each([
  ['x86_64', spec],
  ['aarch64', arm],
] as const)('vz profile on %s', (_arch, make) => {
  const { args } = buildQemuArgs(make(), host());

  it('has no UART console: -serial none, the console log is a virtconsole (hvc0)', () => {
    expect(one(args, '-serial')).toBe('none');
    expect(values(args, '-chardev')).toContain('file,id=con,path=/state/run/console.log');
    const devices = values(args, '-device');
    expect(devices).toContain('virtio-serial-pci');
    expect(devices).toContain('virtconsole,chardev=con');
    const append = one(args, '-append');
    expect(append.split(' ')).toContain('console=hvc0');
    expect(append).not.toMatch(/ttyS0|ttyAMA0/);
  });

  it('attaches every virtio device over PCI, as VZ does, none over virtio-mmio', () => {
    const devices = values(args, '-device');
    expect(devices).toEqual(
      expect.arrayContaining([
        'virtio-blk-pci,drive=root',
        'virtio-net-pci,netdev=net0',
        'virtio-rng-pci',
        'vhost-user-fs-pci,chardev=vfs,tag=workspace',
        'vhost-user-fs-pci,chardev=vfs-seed,tag=seed',
      ]),
    );
    expect(devices.filter((d) => /-device\b/.test(d) || d.startsWith('virtio-9p'))).toEqual([]);
    expect(args).not.toContain('-fsdev');
  });

  it('shares workspace and seed over virtiofs, each with its own vhost-user socket', () => {
    const chardevs = values(args, '-chardev');
    expect(chardevs).toContain('socket,id=vfs,path=/state/run/virtiofs.sock');
    expect(chardevs).toContain('socket,id=vfs-seed,path=/state/run/virtiofs-seed.sock');
    expect(values(args, '-object')).toEqual(['memory-backend-memfd,id=mem,size=1024M,share=on']);
    expect(one(args, '-M')).toContain('memory-backend=mem');
    const words = one(args, '-append').split(' ');
    expect(words).toContain('cowork.share=virtiofs');
    expect(words).toContain('cowork.seed=virtiofs');
  });

  it('keeps the user-mode NIC with hostfwd for SSH (no vhost-vsock on these hosts)', () => {
    const netdev = one(args, '-netdev');
    expect(netdev).toMatch(/^user,id=net0,restrict=on,hostfwd=tcp:127\.0\.0\.1:40022-:22$/);
    expect(args.join(' ')).not.toMatch(/vsock/);
  });

  it('keeps the root disk read-only and the QMP socket for system_powerdown', () => {
    expect(values(args, '-drive')[0]).toMatch(/readonly=on/);
    expect(one(args, '-qmp')).toBe('unix:/state/run/qmp.sock,server=on,wait=off');
  });

  it('refuses 9p (VZ has only virtiofs) and a missing seed socket', () => {
    expect(invalid(() => buildQemuArgs(make(), host({ shareMode: '9p' }))).message).toMatch(/virtiofs/);
    expect(invalid(() => buildQemuArgs(make(), host({ seedVirtiofsSocketPath: undefined }))).message).toMatch(
      /seedVirtiofsSocketPath/,
    );
    expect(
      invalid(() => buildQemuArgs(make(), host({ seedVirtiofsSocketPath: 'relative.sock' }))).message,
    ).toMatch(/seed virtiofs socket/);
  });
});

describe('vz profile: the power button per architecture', () => {
  it('x86_64: microvm with ACPI on (its GED drives the ACPI power button), no ISA serial, PCIe', () => {
    const m = one(buildQemuArgs(spec(), host()).args, '-M').split(',');
    expect(m[0]).toBe('microvm');
    expect(m).toEqual(expect.arrayContaining(['isa-serial=off', 'acpi=on', 'pcie=on']));
  });

  it('aarch64: -M virt (system_powerdown pulses PL061 GPIO 3 → gpio-keys KEY_POWER)', () => {
    expect(one(buildQemuArgs(arm(), host()).args, '-M')).toBe('virt,memory-backend=mem');
  });
});

describe('default profile is unchanged by the vz option', () => {
  it('absent or "default": UART console, virtio-mmio, 9p seed, no cowork.seed word', () => {
    for (const s of [spec({ deviceProfile: undefined }), spec({ deviceProfile: 'default' })]) {
      const { args } = buildQemuArgs(s, host({ seedVirtiofsSocketPath: undefined }));
      expect(one(args, '-serial')).toBe('chardev:con');
      expect(one(args, '-M')).toBe('microvm,memory-backend=mem');
      expect(values(args, '-device')).toContain('virtio-blk-device,drive=root');
      expect(values(args, '-device')).toContain('virtio-9p-device,fsdev=seed,mount_tag=seed');
      expect(one(args, '-append')).not.toContain('cowork.seed=');
      expect(one(args, '-append')).toContain('console=ttyS0');
    }
  });

  it('an unknown profile is refused', () => {
    const s = spec({ deviceProfile: 'hyperv' as unknown as VmSpec['deviceProfile'] });
    expect(invalid(() => buildQemuArgs(s, host())).message).toMatch(/device profile "hyperv"/);
  });

  it('kernelCmdline: vz puts hvc0 and cowork.seed=virtiofs before spec.kernelArgs', () => {
    const line = kernelCmdline(arm({ kernelArgs: ['extra=1'] }), 'virtiofs');
    expect(line).toBe(
      'console=hvc0 quiet panic=-1 cowork.root=/dev/vda cowork.share=virtiofs cowork.seed=virtiofs extra=1',
    );
  });
});

describe('virtiofsdCommand: a read-only share', () => {
  const base = { binary: '/usr/lib/qemu/virtiofsd', socketPath: '/run/s.sock', sharedDir: '/state/seed' };

  it('read-write: virtiofsd itself', () => {
    const [bin, args] = virtiofsdCommand(base);
    expect(bin).toBe('/usr/lib/qemu/virtiofsd');
    expect(args).toContain('source=/state/seed');
  });

  it('read-only: in a private mount namespace with the folder bound read-only, then exec', () => {
    const [bin, args] = virtiofsdCommand({ ...base, readOnly: true });
    expect(bin).toBe('unshare');
    expect(args.slice(0, 4)).toEqual(['--mount', '--propagation', 'private', '--']);
    const script = args[6]!;
    expect(script).toContain('mount -o remount,bind,ro -- "$0"');
    expect(script).toMatch(/&& exec "\$@"$/);
    // $0 is the folder, then virtiofsd and its own arguments, never interpolated into the script
    expect(args.slice(7, 9)).toEqual(['/state/seed', '/usr/lib/qemu/virtiofsd']);
    expect(script).not.toContain('/state/seed');
  });
});
