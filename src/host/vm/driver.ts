import type { Duplex } from 'node:stream';

/**
 * The one interface both hypervisors implement (QEMU here, Virtualization.framework on macOS).
 * Drivers know nothing about SSH, policy or agents: they boot a VmSpec and hand out byte
 * streams to guest ports. The sandbox branches on `capabilities` and takes the guest's
 * addresses from `network`, never from a driver's name.
 */

export type Arch = 'x86_64' | 'aarch64';
export type Accel = 'auto' | 'kvm' | 'hvf' | 'tcg';
export type ShareMode = 'virtiofs' | '9p';
/**
 * The guest's device model. 'default': what each driver normally attaches. 'vz': QEMU
 * reproducing Virtualization.framework's devices (virtio-pci, a virtio console on hvc0 and no
 * UART, virtiofs for every share, a power button) so the guest side of VZ is tested on Linux.
 */
export type DeviceProfile = 'default' | 'vz';

/** A host folder shared into the guest. The guest mounts it by `tag` (see docs/guest-contract.md). */
export interface ShareSpec {
  tag: string;
  hostPath: string;
  readOnly: boolean;
}

/** The guest image files a driver boots (produced by the image store). */
export interface BootImage {
  kernel: string;
  /**
   * x86_64: the same kernel uncompressed (an ELF with a PVH entry note). QEMU boots it directly,
   * skipping the bzImage's own decompressor, which under TCG costs ~2.6 s per boot; VZ and QEMU's
   * "vz" device profile boot `kernel`.
   */
  pvhKernel?: string;
  initrd: string;
  rootfs: string; // read-only ext4, attached as the first virtio-blk disk
  arch: Arch;
}

/** Workspace share knobs (VmSpec.shareTuning). Unset = the driver's defaults. */
export interface ShareTuning {
  /** virtiofsd's cache mode (default none: host edits are seen at once) and attribute timeout in s. */
  virtiofsCache?: 'none' | 'auto' | 'always';
  virtiofsTimeoutS?: number;
  /** virtiofsd's worker thread pool (default 0: requests handled on the queue thread). */
  virtiofsThreadPoolSize?: number;
  /** The vhost-user-fs device's virtqueue size (QEMU default 128). */
  virtiofsQueueSize?: number;
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
  /**
   * The egress proxy on the host, for a driver that relays it itself (`network.egress.relay`
   * 'driver': VZ, over vsock, one host connection per guest connection). Absent for a driver
   * whose guest reaches the proxy over the SSH session ('ssh': QEMU) — that driver refuses it.
   */
  egress?: {
    hostPort: number;
    /** Where the guest reaches it: the driver's own `network.egress`. */
    guestAddress: string;
    guestPort: number;
  };
  /** Folder the driver may use for its own runtime files (console log, QMP socket, pid). */
  runDir: string;
  /** Extra kernel command line words (the driver adds console/root/etc. itself). */
  kernelArgs?: string[];
  /** How long to wait for the guest's readiness line. */
  bootTimeoutMs?: number;
  /** Device model (default 'default'); a driver refuses one not in capabilities.deviceProfiles. */
  deviceProfile?: DeviceProfile;
  /**
   * A writable raw disk the guest mounts at the agent's cache folders (src/host/cache/). Written
   * by the guest, so the driver attaches it as raw bytes (no format probing) and nothing on the
   * host ever reads it. Only for a driver with `capabilities.cacheDisk`.
   */
  cacheDisk?: { path: string };
  /**
   * The workspace share's tuning knobs, for the bench that measures them (scripts/bench/
   * share-knobs.js) — not a config key: the defaults are the measured, coherent choice.
   */
  shareTuning?: ShareTuning;
  /**
   * Start warm when a memory snapshot for this image and VM shape is in `dir` (a driver with
   * `capabilities.warmStart`); otherwise, or when the restore fails, boot cold and say why.
   */
  warm?: { dir: string };
}

/** What `VmDriver.snapshot` wrote. */
export interface WarmSnapshotInfo {
  file: string;
  key: string;
  bytes: number;
  bootMs: number;
}

/** What a driver can do; the sandbox checks a request against these before booting. */
export interface DriverCapabilities {
  /** Workspace share transports it can attach (the seed share is the driver's own business). */
  shareModes: ShareMode[];
  /** Accelerators it accepts in VmSpec.accel ('auto' lets it choose). */
  accels: Accel[];
  /** True when stop({ graceful: true }) asks the guest to power off before the process is ended. */
  gracefulShutdown: boolean;
  /** Device profiles it can boot (absent: only 'default'). */
  deviceProfiles?: DeviceProfile[];
  /** Whether it can attach VmSpec.cacheDisk (absent: no; the sandbox then starts without one and says so). */
  cacheDisk?: boolean;
  /** Whether it can restore a booted guest from a memory snapshot (VmSpec.warm, snapshot()). */
  warmStart?: boolean;
}

/**
 * The guest's network as this driver builds it. Only the driver knows these numbers (QEMU's
 * user network assigns them; VZ has no NIC and relays over vsock), so the sandbox writes them
 * into the seed share and hands them to tools, and no address is spelled above the driver.
 */
export interface GuestNetwork {
  /** How the host reaches a guest port (sshd): a forwarded 127.0.0.1 port, or vsock. */
  transport: 'tcp-forward' | 'vsock';
  /**
   * The static address (with prefix) the guest gives its NIC, e.g. '10.0.2.15/24' under QEMU's
   * user network; absent when the guest has no NIC (VZ). Passed as GUEST_ADDRESS in guest.env.
   */
  guestCidr?: string;
  /**
   * Where the guest reaches the host's egress proxy, and who carries the connections there:
   * 'driver' — the driver relays them to spec.egress.hostPort (VZ: vsock); 'ssh' — the sandbox's
   * SSH session has the guest's sshd listen on `address:port` (the guest's loopback) and pipes
   * each connection to the proxy on the host (QEMU: its user network gives the guest no route).
   */
  egress: { address: string; port: number; relay: 'driver' | 'ssh' };
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
  /**
   * What happened, in the driver's words, naming its own process, e.g. "the VM process (qemu)
   * was killed by SIGKILL". The sandbox and the CLI show it as-is.
   */
  reason: string;
  /** Last lines of the console, to show a user why a guest died. */
  consoleTail: string;
}

export interface VmHandle {
  readonly state: VmState;
  readonly pid: number | undefined;
  readonly consoleLogPath: string;
  /** What the driver actually used (e.g. share '9p' after virtiofs was unavailable). */
  readonly info: {
    accel: Exclude<Accel, 'auto'>;
    shareMode: ShareMode;
    hostPorts: Record<number, number>;
    /** How this guest started: restored from a warm snapshot, or booted (with why not warm). */
    start?: { kind: 'warm' | 'cold'; reason?: string };
    /** Each boot step's end in seconds of guest uptime, when the guest printed them (COWORK-TIME). */
    bootSteps?: Record<string, number>;
  };
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
  readonly network: GuestNetwork;
  /** Whether this driver can run here, and why not (binary missing, no entitlement, KVM unusable). */
  probe(opts?: { accel?: Accel }): Promise<ProbeResult>;
  /** Boots the spec; MUST resolve only after the guest printed its readiness line. */
  start(
    spec: VmSpec,
    opts?: { signal?: AbortSignal; onProgress?: (line: string) => void },
  ): Promise<VmHandle>;
  /**
   * Boots `spec` to the guest's warm point (nothing of a sandbox attached: its shares may be
   * empty folders) and saves a memory snapshot into `spec.warm.dir`. Only with `capabilities.warmStart`.
   */
  snapshot?(spec: VmSpec, opts?: { onProgress?: (line: string) => void }): Promise<WarmSnapshotInfo>;
}
