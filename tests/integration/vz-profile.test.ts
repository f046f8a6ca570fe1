import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import { requireProvided } from '../../src/host/host-requirements.js';
import { SshGuestSession } from '../../src/host/ssh/index.js';
import type { Arch, VmExitInfo, VmHandle } from '../../src/host/vm/driver.js';
import { QemuDriver } from '../../src/host/vm/qemu/index.js';
import { baseImage, type GuestDirs, guestDirs, guestSpec } from './qemu-fixtures.js';

/**
 * The guest side of Virtualization.framework, on Linux: QEMU's "vz" device profile (virtio-pci,
 * console on virtio-console/hvc0 with no UART backend, virtiofs for workspace AND seed, VZ's
 * power button) boots the real images of both architectures under TCG, one guest per arch.
 *
 * What this cannot cover: VZ reaches sshd over vsock, and these hosts have no vhost-vsock, so
 * SSH travels over the user-mode NIC (hostfwd) here exactly as in the default profile.
 *
 * Never skipped: a missing qemu-system-<arch> or image FAILS with the command that fixes it.
 */

const ARCHES: { arch: Arch; debArch: 'amd64' | 'arm64'; binary: string; powerDevice: RegExp }[] = [
  // -M virt: system_powerdown pulses PL061 GPIO 3, the device tree's gpio-keys turns it into KEY_POWER.
  { arch: 'aarch64', debArch: 'arm64', binary: 'qemu-system-aarch64', powerDevice: /gpio-keys/ },
  // microvm with acpi=on: the GED notifies the ACPI power button (PNP0C0C), the button driver reports it.
  { arch: 'x86_64', debArch: 'amd64', binary: 'qemu-system-x86_64', powerDevice: /Power Button/ },
];

const timings: string[] = [];

afterAll(() => {
  if (timings.length) console.log(`vz profile boot to COWORK-READY (TCG): ${timings.join(', ')}`);
});

describe.each(ARCHES)('vz device profile on $arch', ({ arch, debArch, binary, powerDevice }) => {
  let d: GuestDirs;
  let vm: VmHandle;
  let ssh: SshGuestSession;
  let qemuCmdline = '';

  beforeAll(async () => {
    // From the host requirements list: missing → FAILS with the package and its install line.
    requireProvided(binary);
    const image = await baseImage(arch).catch((err: unknown) => {
      throw new CoworkError(
        'notFound',
        `${(err as Error).message}; for this arch: node bin/cowork-vm.js image build base --arch ${debArch}`,
        err,
      );
    });
    d = await guestDirs(`vzp-${debArch}`);
    const driver = new QemuDriver({ stateDir: d.stateDir });
    const t0 = Date.now();
    vm = await driver.start(
      guestSpec(d, image, {
        deviceProfile: 'vz',
        accel: 'tcg',
        shareMode: 'virtiofs',
        bootTimeoutMs: 300_000,
      }),
    );
    timings.push(`${arch} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    qemuCmdline = readFileSync(`/proc/${vm.pid}/cmdline`, 'utf8').split('\0').join(' ');
    ssh = await SshGuestSession.connect({
      connect: () => vm.connect(22),
      username: 'agent',
      privateKey: d.keys.clientPrivateKey,
      hostKey: d.keys.hostPublicKey,
      readyTimeoutMs: 60_000,
    });
  }, 400_000);

  afterAll(async () => {
    await ssh?.close();
    if (vm && vm.state !== 'stopped' && vm.state !== 'crashed') await vm.stop({ graceful: false });
    d?.cleanup();
  });

  async function run(command: string): Promise<string> {
    const r = await ssh.exec(command, { timeoutMs: 60_000 });
    expect(r.exitCode, `${command}: ${r.stderr}`).toBe(0);
    return r.stdout;
  }

  it('boots to COWORK-READY with the console on hvc0 and no UART console', async () => {
    expect(readFileSync(vm.consoleLogPath, 'utf8')).toMatch(/COWORK-READY \{.*"sshd":true/);
    // QEMU side: the console log file is fed by a virtconsole, the UART has no backend.
    expect(qemuCmdline).toContain('virtconsole,chardev=con');
    expect(qemuCmdline).toMatch(/-serial none/);
    // Guest side: the kernel's console is hvc0 and nothing else.
    expect((await run('cat /proc/cmdline')).split(/\s+/)).toContain('console=hvc0');
    expect((await run('cat /sys/class/tty/console/active')).trim()).toBe('hvc0');
    const consoles = (await run('cat /proc/consoles')).trim().split('\n');
    expect(consoles.map((l) => l.split(/\s+/)[0])).toEqual(['hvc0']);
    if (arch === 'x86_64') {
      // microvm isa-serial=off: the 8250 driver's ttyS0 placeholder has no UART behind it (type 0).
      expect((await run('cat /sys/class/tty/ttyS0/type 2>/dev/null || echo 0')).trim()).toBe('0');
    }
  });

  it('attaches its devices over virtio-pci, as VZ does', async () => {
    const bound = (await run('ls /sys/bus/pci/drivers/virtio-pci')).split(/\s+/).filter((n) => /:/.test(n));
    // block, net, serial (console), rng, two vhost-user-fs
    expect(bound.length).toBeGreaterThanOrEqual(6);
    expect(qemuCmdline).not.toMatch(/virtio-\w+-device/);
  });

  it('mounts the workspace over virtiofs and mounted the seed over virtiofs', async () => {
    const mounts = await run('cat /proc/mounts');
    // Root-owned workspace (tests run as root): cowork-init remaps it through bindfs from /run/cowork-share.
    expect(mounts).toMatch(/^workspace \/(workspace|run\/cowork-share) virtiofs /m);
    expect(mounts).not.toMatch(/ 9p /);
    // The guest reads the seed at boot and unmounts it; cowork-init says how it mounted it.
    expect(readFileSync(vm.consoleLogPath, 'utf8')).toContain('cowork-init: seed share mounted (virtiofs)');
    expect((await run('cat /proc/cmdline')).split(/\s+/)).toContain('cowork.seed=virtiofs');
    expect(qemuCmdline.match(/vhost-user-fs-pci/g)).toHaveLength(2);
  });

  it('runs commands over SSH and its workspace writes reach the host', async () => {
    expect((await run('id -un; uname -m')).split('\n').slice(0, 2)).toEqual(['agent', arch]);
    writeFileSync(join(d.workspace, 'from-host.txt'), 'host says hi\n');
    expect(await run('cat /workspace/from-host.txt')).toBe('host says hi\n');
    await run(`echo "written in the ${arch} guest" > /workspace/from-guest.txt`);
    expect(readFileSync(join(d.workspace, 'from-guest.txt'), 'utf8')).toBe(`written in the ${arch} guest\n`);
  });

  it('the seed is read-only on the host side too (its virtiofsd serves a read-only bind)', async () => {
    expect(existsSync(join(d.seed, 'authorized_keys'))).toBe(true);
    // As the host sees it: the seed virtiofsd's mount namespace has the folder read-only.
    const pid = Number(readFileSync(join(d.runDir, 'virtiofsd-seed.pid'), 'utf8'));
    const mountinfo = readFileSync(`/proc/${pid}/mountinfo`, 'utf8');
    expect(mountinfo.split('\n').some((l) => l.split(' ')[5]?.split(',').includes('ro'))).toBe(true);
  });

  it('has the power button VZ has, read by acpid', async () => {
    expect(await run('cat /proc/bus/input/devices')).toMatch(powerDevice);
    expect(await run("pgrep -x -f 'busybox acpid -c /etc/acpi -l /run/acpid.log'")).toMatch(/^\d+/);
  });

  it('a graceful stop goes through the power button and the guest powers itself off', async () => {
    await ssh.close();
    const info: VmExitInfo = await vm.stop({ graceful: true, timeoutMs: 120_000 });
    expect(info.state).toBe('stopped');
    // QEMU ended because the guest powered off (exit 0), not because it was quit or killed.
    expect(info.signal).toBeNull();
    expect(info.code).toBe(0);
    const console = readFileSync(vm.consoleLogPath, 'utf8');
    // acpid ran /etc/acpi/PWRF/00000080 → SIGUSR2 to cowork-init → its own power-off.
    expect(console).toMatch(/cowork-init: powering off \(power button\)/);
  }, 180_000);
});
