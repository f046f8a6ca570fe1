import type { Duplex } from 'node:stream';

/**
 * The one interface both hypervisors implement (QEMU here, Virtualization.framework on macOS).
 * Drivers know nothing about SSH, policy or agents: they boot a VmSpec and hand out byte
 * streams to guest ports. The sandbox branches on `capabilities`, never on a driver's name.
 */

export type Arch = 'x86_64' | 'aarch64';
export type Accel = 'auto' | 'kvm' | 'hvf' | 'tcg';
export type ShareMode = 'virtiofs' | '9p';

/** A host folder shared into the guest. The guest mounts it by `tag` (see docs/guest-contract.md). */
export interface ShareSpec {
  tag: string;
  hostPath: string;
  readOnly: boolean;
}

/** The guest image files a driver boots (produced by the image store). */
export interface BootImage {
  kernel: string;
  initrd: string;
  rootfs: string; // read-only ext4, attached as the first virtio-blk disk
  arch: Arch;
}

/** Plain data: everything a driver needs to boot one guest. */
export interface VmSpec {
  name: string; // for logs and process titles
  cpus: number;
  memoryMiB: number;
  image: BootImage;
  workspace: ShareSpec; // tag "workspace", read-write
  seed: ShareSpec; // tag "seed", read-only: keys and guest config
  /** Preferred share transport for the workspace; the driver may fall back and reports what it used. */
  shareMode?: ShareMode | 'auto';
  accel: Accel;
  /** Guest ports the host must be able to reach through `VmHandle.connect` (SSH is 22). */
  guestPorts: number[];
  /** Optional egress proxy on the host that the guest may reach (issue #5). */
  egress?: {
    hostPort: number;
    guestAddress: string;
    guestPort: number;
    /**
     * QEMU: a host command run once per guest connection with that connection on its
     * stdin/stdout (guestfwd `cmd:`), e.g. egress/relay.ts `egressRelayCommand(hostPort)`.
     * Required there: QEMU's tcp chardev form carries ONE stream for all guest connections.
     * VZ ignores it (vsock connections are relayed to hostPort one by one).
     */
    hostCommand?: string;
  };
  /** Folder the driver may use for its own runtime files (console log, QMP socket, pid). */
  runDir: string;
  /** Extra kernel command line words (the driver adds console/root/etc. itself). */
  kernelArgs?: string[];
  /** How long to wait for the guest's readiness line. */
  bootTimeoutMs?: number;
}

export interface DriverCapabilities {
  shareModes: ShareMode[];
  accels: Accel[];
  /** True when connect() goes through host TCP forwarding (QEMU user-net), false for vsock (VZ). */
  tcpForwarding: boolean;
  gracefulShutdown: boolean;
}

export interface ProbeResult {
  ok: boolean;
  /** Why not, and what to do, when !ok. */
  reason?: string;
  fix?: string;
  /** Resolved accelerator for 'auto' (e.g. 'tcg' after KVM failed its probe), with why. */
  accel?: Exclude<Accel, 'auto'>;
  accelReason?: string;
  details?: Record<string, string>;
}

export type VmState = 'starting' | 'running' | 'stopping' | 'stopped' | 'crashed';

export interface VmExitInfo {
  state: 'stopped' | 'crashed';
  code: number | null;
  signal: string | null;
  /** Last lines of the console, to show a user why a guest died. */
  consoleTail: string;
}

export interface VmHandle {
  readonly state: VmState;
  readonly pid: number | undefined;
  readonly consoleLogPath: string;
  /** What the driver actually used (e.g. share '9p' after virtiofs was unavailable). */
  readonly info: { accel: Exclude<Accel, 'auto'>; shareMode: ShareMode; hostPorts: Record<number, number> };
  /** A byte stream to a guest port (host-forwarded TCP under QEMU, vsock under VZ). */
  connect(guestPort: number): Promise<Duplex>;
  /** Graceful first (ACPI power-down / guest shutdown) then forced after timeoutMs. Resolves when the VM is gone. */
  stop(opts?: { graceful?: boolean; timeoutMs?: number }): Promise<VmExitInfo>;
  /** Resolves once, when the VM process ends for any reason. */
  readonly exited: Promise<VmExitInfo>;
  on(event: 'exit', listener: (info: VmExitInfo) => void): this;
  off(event: 'exit', listener: (info: VmExitInfo) => void): this;
}

export interface VmDriver {
  readonly name: 'qemu' | 'vz';
  readonly capabilities: DriverCapabilities;
  /** Whether this driver can run here, and why not (binary missing, no entitlement, KVM unusable). */
  probe(opts?: { accel?: Accel }): Promise<ProbeResult>;
  /** Boots the spec; MUST resolve only after the guest printed its readiness line. */
  start(
    spec: VmSpec,
    opts?: { signal?: AbortSignal; onProgress?: (line: string) => void },
  ): Promise<VmHandle>;
}
