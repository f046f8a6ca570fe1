import { CoworkError } from '../../errors.js';
import type { Accel, Arch, DeviceProfile, ShareMode, ShareSpec, VmSpec } from '../driver.js';

/**
 * Pure QEMU command-line builder: everything the QEMU process needs, derived from a VmSpec and
 * the host facts the driver resolved (accelerator, share transport, ports, runtime paths).
 * No I/O here, so every flag can be unit-tested without QEMU.
 *
 * Security contract (tests/unit/qemu-args.test.ts enforces it):
 *  - the only network device is user-mode networking with `restrict=on`; the only rules are
 *    `hostfwd=tcp:127.0.0.1:<hostPort>-:<guestPort>` for the requested guest ports, and there is
 *    no outbound rule at all (no guestfwd: the egress proxy travels over SSH, user-net.ts);
 *  - the root disk and the seed share are always read-only;
 *  - nothing reads stdin or draws a window: console and QMP go to files/sockets.
 *
 * Device profiles (VmSpec.deviceProfile): 'default' is microvm (x86_64) / virt (aarch64) with
 * virtio-mmio devices, a UART console and a 9p seed. 'vz' reproduces what
 * Virtualization.framework gives a guest, so the guest's side of VZ runs here: virtio-pci
 * devices, the console on virtio-console (hvc0) with NO UART backend, virtiofs for the
 * workspace AND the seed, and VZ's power button (x86_64: microvm's ACPI power button through
 * its GED; aarch64: virt's PL061 GPIO line 3 → gpio-keys KEY_POWER). The one difference that
 * stays: VZ has no NIC and reaches sshd over vsock, which cannot be tested on these hosts (no
 * vhost-vsock), so the user-mode NIC with its hostfwd carries SSH in both profiles.
 */

/** 9p `security_model`: `passthrough` needs root (real ownership), `none` works for any user. */
export type NinePSecurityModel = 'passthrough' | 'none' | 'mapped-xattr';

export interface QemuHostConfig {
  /** The host's CPU architecture (hardware acceleration needs guest arch == host arch). */
  hostArch: Arch;
  /** Resolved accelerator (never 'auto'). */
  accel: Exclude<Accel, 'auto'>;
  /** Resolved workspace transport. */
  shareMode: ShareMode;
  /** guest port → host port on 127.0.0.1; MUST cover spec.guestPorts exactly. */
  hostPorts: Record<number, number>;
  qmpSocketPath: string;
  consoleLogPath: string;
  /** Required when shareMode is 'virtiofs': the vhost-user socket virtiofsd listens on. */
  virtiofsSocketPath?: string;
  /** Required by the 'vz' profile: the socket of the seed's (read-only) virtiofsd. */
  seedVirtiofsSocketPath?: string;
  ninePSecurityModel: NinePSecurityModel;
  /** Overrides the default `qemu-system-<arch>` binary name. */
  qemuBinary?: string;
  /**
   * The host's TSC frequency in kHz (x86_64 hosts). Under TCG the guest TSC runs at the host's
   * rate; when the host is busy the guest's PIT calibration fails, the kernel marks the TSC
   * unstable and then waits forever for a tick (seen here under load: stuck at "tsc: Marking
   * TSC unstable"). `tsc_early_khz=` skips that calibration.
   */
  tscKhz?: number;
  /** Start paused, waiting for a migration stream (`-incoming defer`): a warm start (qemu/warm.ts). */
  incoming?: boolean;
}

export interface QemuCommand {
  binary: string;
  args: string[];
}

const TAG_RE = /^[A-Za-z0-9_-]{1,31}$/;

export function qemuBinaryFor(arch: Arch): string {
  return arch === 'x86_64' ? 'qemu-system-x86_64' : 'qemu-system-aarch64';
}

/** QEMU option values use ',' as separator; a literal comma is written ',,'. */
export function escapeOptionValue(value: string): string {
  return value.replaceAll(',', ',,');
}

function invalid(message: string): CoworkError {
  return new CoworkError('invalidArgument', message);
}

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalid(`${what} ${port} is not a TCP port (1-65535)`);
  }
}

function checkPath(path: string, what: string): void {
  if (!path.startsWith('/') || path.includes('\n') || path.includes('\0')) {
    throw invalid(`${what} must be an absolute path without newlines (got ${JSON.stringify(path)})`);
  }
}

function checkSpec(spec: VmSpec, host: QemuHostConfig): void {
  if (!Number.isInteger(spec.cpus) || spec.cpus < 1 || spec.cpus > 64) {
    throw invalid(`cpus must be an integer 1-64 (got ${spec.cpus})`);
  }
  if (!Number.isInteger(spec.memoryMiB) || spec.memoryMiB < 128 || spec.memoryMiB > 262144) {
    throw invalid(`memoryMiB must be an integer 128-262144 (got ${spec.memoryMiB})`);
  }
  if (host.accel !== 'tcg' && host.hostArch !== spec.image.arch) {
    throw invalid(
      `accelerator ${host.accel} cannot run a ${spec.image.arch} guest on a ${host.hostArch} host — use --accel tcg`,
    );
  }
  for (const [what, p] of [
    ['kernel', bootKernel(spec)],
    ['initrd', spec.image.initrd],
    ['rootfs', spec.image.rootfs],
    ['workspace', spec.workspace.hostPath],
    ['seed', spec.seed.hostPath],
    ['QMP socket', host.qmpSocketPath],
    ['console log', host.consoleLogPath],
    ...(spec.cacheDisk ? ([['cache disk', spec.cacheDisk.path]] as const) : []),
  ] as const) {
    checkPath(p, what);
  }
  for (const share of [spec.workspace, spec.seed]) {
    if (!TAG_RE.test(share.tag)) throw invalid(`share tag ${JSON.stringify(share.tag)} must match ${TAG_RE}`);
  }
  if (spec.workspace.tag === spec.seed.tag)
    throw invalid(`workspace and seed share the tag "${spec.seed.tag}"`);
  if (spec.guestPorts.length === 0) throw invalid('guestPorts is empty: nothing could reach the guest');
  const mapped = Object.keys(host.hostPorts).map(Number);
  for (const gp of spec.guestPorts) {
    checkPort(gp, 'guest port');
    const hp = host.hostPorts[gp];
    if (hp === undefined) throw invalid(`no host port was allocated for guest port ${gp}`);
    checkPort(hp, 'host port');
  }
  const extra = mapped.filter((gp) => !spec.guestPorts.includes(gp));
  if (extra.length > 0)
    throw invalid(`host ports given for guest ports not in the spec: ${extra.join(', ')}`);
  const profile = deviceProfileOf(spec);
  if (profile !== 'default' && profile !== 'vz')
    throw invalid(`device profile ${JSON.stringify(profile)} is not one of default, vz`);
  if (profile === 'vz' && host.shareMode !== 'virtiofs')
    throw invalid(
      'the vz device profile shares everything over virtiofs, and the workspace share resolved to 9p — run as root with virtiofsd installed (scripts/setup-host.sh)',
    );
  if (spec.egress) {
    throw invalid(
      'the QEMU driver does not relay egress: its guest has no route out, and reaches the proxy over the SSH session (network.egress.relay "ssh")',
    );
  }
  for (const word of spec.kernelArgs ?? []) {
    if (!word || /\s/.test(word))
      throw invalid(`kernel argument ${JSON.stringify(word)} is empty or has spaces`);
  }
  const queueSize = spec.shareTuning?.virtiofsQueueSize;
  if (
    queueSize !== undefined &&
    !(
      Number.isInteger(queueSize) &&
      queueSize >= 64 &&
      queueSize <= 1024 &&
      (queueSize & (queueSize - 1)) === 0
    )
  ) {
    throw invalid(`shareTuning.virtiofsQueueSize must be a power of two 64-1024 (got ${queueSize})`);
  }
}

/** The kernel file QEMU loads: the PVH ELF when the image has one, except in the "vz" profile (VZ boots the bzImage). */
export function bootKernel(spec: VmSpec): string {
  return deviceProfileOf(spec) !== 'vz' && spec.image.pvhKernel ? spec.image.pvhKernel : spec.image.kernel;
}

export function deviceProfileOf(spec: VmSpec): DeviceProfile {
  return spec.deviceProfile ?? 'default';
}

function machineArgs(spec: VmSpec, host: QemuHostConfig): string[] {
  const x86 = spec.image.arch === 'x86_64';
  const machine = [x86 ? 'microvm' : 'virt'];
  // vz: no UART at all on x86 (microvm's isa-serial off; virt's PL011 cannot be removed, it just
  // has no backend), ACPI for the power button, PCIe for virtio-pci devices like VZ's.
  if (deviceProfileOf(spec) === 'vz' && x86) machine.push('isa-serial=off', 'acpi=on', 'pcie=on');
  if (host.shareMode === 'virtiofs') machine.push('memory-backend=mem');
  const cpu = host.accel === 'tcg' ? 'max' : 'host';
  return [
    '-M',
    machine.join(','),
    '-accel',
    host.accel,
    '-cpu',
    cpu,
    '-smp',
    String(spec.cpus),
    '-m',
    `${spec.memoryMiB}M`,
  ];
}

/** A virtio device's QEMU name for the profile's transport: virtio-pci under 'vz', else virtio-mmio. */
function dev(spec: VmSpec, kind: string): string {
  return `${kind}-${deviceProfileOf(spec) === 'vz' ? 'pci' : 'device'}`;
}

function ninePArgs(id: string, share: ShareSpec, readOnly: boolean, model: NinePSecurityModel): string[] {
  const fsdev = ['local', `id=${id}`, `path=${escapeOptionValue(share.hostPath)}`, `security_model=${model}`];
  if (readOnly) fsdev.push('readonly=on');
  return ['-fsdev', fsdev.join(','), '-device', `virtio-9p-device,fsdev=${id},mount_tag=${share.tag}`];
}

/**
 * The cache disk: writable, and guest-written, so `format=raw` (QEMU must never probe a format
 * from bytes the guest chose) and no backing file. The guest finds it by its serial, not its
 * position. `discard=unmap` lets the guest's trims keep the file sparse.
 */
export const CACHE_DISK_SERIAL = 'cowork-cache';

function cacheDiskArgs(spec: VmSpec): string[] {
  if (!spec.cacheDisk) return [];
  return [
    '-drive',
    `id=cache,file=${escapeOptionValue(spec.cacheDisk.path)},format=raw,if=none,discard=unmap`,
    '-device',
    `${dev(spec, 'virtio-blk')},drive=cache,serial=${CACHE_DISK_SERIAL}`,
  ];
}

function workspaceArgs(spec: VmSpec, host: QemuHostConfig): string[] {
  if (host.shareMode === '9p') {
    return ninePArgs('ws', spec.workspace, spec.workspace.readOnly, host.ninePSecurityModel);
  }
  if (!host.virtiofsSocketPath) throw invalid('shareMode virtiofs needs virtiofsSocketPath');
  checkPath(host.virtiofsSocketPath, 'virtiofs socket');
  // vhost-user needs guest RAM shared with virtiofsd: a memfd backend the machine uses as its RAM.
  return [
    '-object',
    `memory-backend-memfd,id=mem,size=${spec.memoryMiB}M,share=on`,
    ...vhostUserFsArgs(
      spec,
      'vfs',
      host.virtiofsSocketPath,
      spec.workspace.tag,
      spec.shareTuning?.virtiofsQueueSize,
    ),
  ];
}

function vhostUserFsArgs(
  spec: VmSpec,
  id: string,
  socketPath: string,
  tag: string,
  queueSize?: number,
): string[] {
  return [
    '-chardev',
    `socket,id=${id},path=${escapeOptionValue(socketPath)}`,
    '-device',
    `${dev(spec, 'vhost-user-fs')},chardev=${id},tag=${tag}${queueSize ? `,queue-size=${queueSize}` : ''}`,
  ];
}

/** The seed carries keys: read-only whatever the spec says (vz: its virtiofsd serves it read-only). */
function seedArgs(spec: VmSpec, host: QemuHostConfig): string[] {
  if (deviceProfileOf(spec) !== 'vz') return ninePArgs('seed', spec.seed, true, host.ninePSecurityModel);
  if (!host.seedVirtiofsSocketPath) throw invalid('the vz profile needs seedVirtiofsSocketPath');
  checkPath(host.seedVirtiofsSocketPath, 'seed virtiofs socket');
  return vhostUserFsArgs(spec, 'vfs-seed', host.seedVirtiofsSocketPath, spec.seed.tag);
}

/** default: the UART is the console. vz: no UART backend, a virtconsole (hvc0) on virtio-serial. */
function consoleArgs(spec: VmSpec, host: QemuHostConfig): string[] {
  const chardev = ['-chardev', `file,id=con,path=${escapeOptionValue(host.consoleLogPath)}`];
  if (deviceProfileOf(spec) !== 'vz') return [...chardev, '-serial', 'chardev:con'];
  return [
    ...chardev,
    '-serial',
    'none',
    '-device',
    dev(spec, 'virtio-serial'),
    '-device',
    'virtconsole,chardev=con',
    // VZ gives every guest an entropy device.
    '-device',
    dev(spec, 'virtio-rng'),
  ];
}

function netArgs(spec: VmSpec, host: QemuHostConfig): string[] {
  const netdev = ['user', 'id=net0', 'restrict=on'];
  for (const gp of spec.guestPorts) netdev.push(`hostfwd=tcp:127.0.0.1:${host.hostPorts[gp]}-:${gp}`);
  return ['-netdev', netdev.join(','), '-device', `${dev(spec, 'virtio-net')},netdev=net0`];
}

/** Kernel command line per docs/guest-contract.md; spec.kernelArgs come last. */
export function kernelCmdline(
  spec: VmSpec,
  shareMode: ShareMode,
  timing: { accel?: Accel; hostArch?: Arch; tscKhz?: number } = {},
): string {
  const x86 = spec.image.arch === 'x86_64';
  const vz = deviceProfileOf(spec) === 'vz';
  const words = [
    `console=${vz ? 'hvc0' : x86 ? 'ttyS0' : 'ttyAMA0'}`,
    'quiet',
    'panic=-1',
    'cowork.root=/dev/vda',
    `cowork.share=${shareMode}`,
  ];
  // The vz profile has the NIC transport (no vsock here) but VZ's virtiofs seed.
  if (vz) words.push('cowork.seed=virtiofs');
  const tsc = timing.tscKhz;
  if (
    x86 &&
    timing.accel === 'tcg' &&
    timing.hostArch === 'x86_64' &&
    tsc &&
    Number.isInteger(tsc) &&
    tsc > 0
  ) {
    words.push(`tsc_early_khz=${tsc}`);
  }
  return [...words, ...(spec.kernelArgs ?? [])].join(' ');
}

export function buildQemuArgs(spec: VmSpec, host: QemuHostConfig): QemuCommand {
  checkSpec(spec, host);
  const args = [
    '-name',
    escapeOptionValue(spec.name.replace(/[^\w.-]/g, '_') || 'cowork'),
    ...machineArgs(spec, host),
    '-nodefaults',
    '-no-user-config',
    '-nographic',
    '-display',
    'none',
    // A guest reboot (panic=-1, or `reboot`) ends QEMU instead of looping: the driver sees the exit.
    '-no-reboot',
    // virtio-mmio defaults to the legacy (v1) interface, which vhost-user backends refuse
    // (virtiofsd: "virtio legacy devices aren't supported by libvhost-user" and the workspace
    // hangs). Modern (v2) virtio-mmio works for every device we attach.
    '-global',
    'virtio-mmio.force-legacy=false',
    ...consoleArgs(spec, host),
    '-qmp',
    `unix:${escapeOptionValue(host.qmpSocketPath)},server=on,wait=off`,
    '-kernel',
    bootKernel(spec),
    '-initrd',
    spec.image.initrd,
    '-append',
    kernelCmdline(spec, host.shareMode, host),
    // The root disk is the first virtio-blk device (/dev/vda) and is never writable.
    '-drive',
    `id=root,file=${escapeOptionValue(spec.image.rootfs)},format=raw,if=none,readonly=on`,
    '-device',
    `${dev(spec, 'virtio-blk')},drive=root`,
    ...cacheDiskArgs(spec),
    ...workspaceArgs(spec, host),
    ...seedArgs(spec, host),
    ...netArgs(spec, host),
    ...(host.incoming ? ['-incoming', 'defer'] : []),
  ];
  return { binary: host.qemuBinary ?? qemuBinaryFor(spec.image.arch), args };
}
