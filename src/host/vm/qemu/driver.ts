import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoworkError } from '../../errors.js';
import type {
  Accel,
  Arch,
  DriverCapabilities,
  GuestNetwork,
  ProbeResult,
  ShareMode,
  VmDriver,
  VmHandle,
  VmSpec,
  WarmSnapshotInfo,
} from '../driver.js';
import { type ResolvedAccel, resolveAccel } from './accel.js';
import { buildQemuArgs, type NinePSecurityModel, type QemuHostConfig, qemuBinaryFor } from './args.js';
import { QemuVmHandle } from './handle.js';
import {
  findExecutable,
  findSetpriv,
  findVirtiofsd,
  freeLoopbackPort,
  hostArch,
  hostTscKhz,
  qemuVersion,
} from './host-facts.js';
import { QmpClient } from './qmp.js';
import { waitForReady } from './ready.js';
import { cleanupStrays } from './strays.js';
import { QEMU_GUEST_NETWORK } from './user-net.js';
import { spawnVirtiofsd } from './virtiofsd.js';
import {
  findSnapshot,
  loadSnapshot,
  saveSnapshot,
  sendGo,
  snapshotFile,
  WARM_GO_PORT,
  WARM_POINT_RE,
  warmKey,
  warmRefusal,
  warmShapedSpec,
  writeSnapshotMeta,
} from './warm.js';

/** How boot() runs QEMU: a plain boot, a boot to the warm point that saves it, or a restore. */
type BootMode = { kind: 'cold' } | { kind: 'snapshot'; file: string } | { kind: 'restore'; file: string };
const WARM_RESTORE_TIMEOUT_MS = 60_000;

export interface QemuDriverOptions {
  /** Where the accelerator verdict is remembered (accel.json); usually HostPaths.stateDir. */
  stateDir: string;
  /** Overrides `qemu-system-<arch>` (looked up on PATH). */
  qemuBinary?: string;
  /** Candidate virtiofsd paths; default: Debian's and Fedora's locations. */
  virtiofsdPaths?: string[];
  /** A guest kernel for probe()'s KVM check (start() always uses the spec's kernel). */
  probeKernel?: string;
  probeTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Picks a host port for each forwarded guest port (default: a free 127.0.0.1 port). */
  allocatePort?: () => Promise<number>;
}

const SETUP_FIX = 'bash scripts/setup-host.sh';
const PORT_IN_USE_RE = /could not set up host forwarding rule|hostfwd.*(?:in use|failed)/i;
const DEFAULT_BOOT_TIMEOUT_MS = 120_000;
const MAX_PORT_ATTEMPTS = 3;
/** sun_path is 108 bytes on Linux, 104 on macOS. */
const MAX_SOCKET_PATH = 100;

export class QemuDriver implements VmDriver {
  readonly name = 'qemu' as const;
  readonly capabilities: DriverCapabilities = {
    shareModes: ['9p', 'virtiofs'],
    accels: ['auto', 'kvm', 'hvf', 'tcg'],
    gracefulShutdown: true,
    deviceProfiles: ['default', 'vz'],
    cacheDisk: true,
    warmStart: true,
  };
  readonly network: GuestNetwork = QEMU_GUEST_NETWORK;
  private readonly env: NodeJS.ProcessEnv;
  private readonly hostArch: Arch = hostArch();

  constructor(private readonly opts: QemuDriverOptions) {
    this.env = opts.env ?? process.env;
  }

  private binaryFor(arch: Arch): string {
    return this.opts.qemuBinary ?? qemuBinaryFor(arch);
  }

  async probe(opts: { accel?: Accel } = {}): Promise<ProbeResult> {
    const name = this.binaryFor(this.hostArch);
    const binary = await findExecutable(name, this.env);
    const pkg = this.hostArch === 'x86_64' ? 'qemu-system-x86' : 'qemu-system-arm';
    if (!binary) {
      return {
        ok: false,
        reason: `${name} is not installed`,
        fix: `${SETUP_FIX}  (or: sudo apt-get install ${pkg})`,
      };
    }
    const version = await qemuVersion(binary);
    if (!version) {
      return {
        ok: false,
        reason: `${binary} --version failed`,
        fix: `reinstall QEMU: sudo apt-get install --reinstall ${pkg}`,
      };
    }
    const share = await this.resolveShareMode('auto');
    const details: Record<string, string> = {
      qemu: binary,
      qemuVersion: version,
      shareMode: share.mode,
      shareReason: share.reason,
    };
    if (share.virtiofsd) details.virtiofsd = share.virtiofsd;
    try {
      const verdict = await resolveAccel(
        opts.accel ?? 'auto',
        this.accelContext(binary, version, this.hostArch, this.opts.probeKernel),
      );
      return { ok: true, accel: verdict.accel, accelReason: verdict.reason, details };
    } catch (err) {
      const e = CoworkError.from(err, 'unsupported');
      return { ok: false, reason: e.message, fix: 'use --accel tcg (or COWORK_VM_ACCEL=tcg)', details };
    }
  }

  private accelContext(qemuBinary: string, version: string, guestArch: Arch, kernel?: string) {
    return {
      platform: process.platform,
      hostArch: this.hostArch,
      guestArch,
      qemuBinary,
      qemuVersion: version,
      stateDir: this.opts.stateDir,
      kernel,
      env: this.env,
      probeTimeoutMs: this.opts.probeTimeoutMs,
    };
  }

  /** virtiofs needs virtiofsd and (Debian 12's C virtiofsd) root; otherwise 9p works for anyone. */
  private async resolveShareMode(
    preferred: ShareMode | 'auto',
  ): Promise<{ mode: ShareMode; reason: string; virtiofsd?: string }> {
    if (preferred === '9p') return { mode: '9p', reason: 'requested' };
    if (process.platform !== 'linux') return { mode: '9p', reason: 'virtiofsd runs only on Linux hosts' };
    const virtiofsd = await findVirtiofsd(this.opts.virtiofsdPaths);
    if (!virtiofsd) return { mode: '9p', reason: 'virtiofsd not found (package qemu-system-common)' };
    if (process.getuid?.() !== 0)
      return { mode: '9p', reason: 'virtiofsd needs root; using 9p as an ordinary user', virtiofsd };
    return { mode: 'virtiofs', reason: `virtiofsd at ${virtiofsd}`, virtiofsd };
  }

  /** The QEMU binary for the image's arch, its version and the accelerator: what start and snapshot both need first. */
  private async prepare(spec: VmSpec) {
    const binaryName = this.binaryFor(spec.image.arch);
    const binary = await findExecutable(binaryName, this.env);
    if (!binary) throw new CoworkError('unavailable', `${binaryName} is not installed — run: ${SETUP_FIX}`);
    await checkReadable(spec);
    const version = (await qemuVersion(binary)) ?? 'unknown';
    const verdict = await resolveAccel(
      spec.accel,
      this.accelContext(binary, version, spec.image.arch, spec.image.kernel),
    );
    return { binary, version, verdict };
  }

  async start(
    spec: VmSpec,
    opts: { signal?: AbortSignal; onProgress?: (line: string) => void } = {},
  ): Promise<VmHandle> {
    opts.signal?.throwIfAborted();
    const { binary, version, verdict } = await this.prepare(spec);
    opts.onProgress?.(`accelerator: ${verdict.accel} (${verdict.reason})`);
    const share = await this.resolveShareMode(spec.shareMode ?? 'auto');
    opts.onProgress?.(`workspace share: ${share.mode} (${share.reason})`);
    if (spec.deviceProfile === 'vz' && share.mode !== 'virtiofs')
      throw new CoworkError(
        spec.shareMode === '9p' ? 'invalidArgument' : 'unavailable',
        `the vz device profile shares the workspace and the seed over virtiofs, but here: ${share.reason} — run as root with virtiofsd installed (${SETUP_FIX})`,
      );
    await mkdir(spec.runDir, { recursive: true, mode: 0o700 });
    // A host process SIGKILLed without setpriv may have left its QEMU/virtiofsd running on this
    // runDir (the sandbox lock was stale, so nothing else owns them): stop them before reusing it.
    const strays = await cleanupStrays(spec.runDir);
    if (strays.length)
      opts.onProgress?.(`stopped ${strays.length} process(es) a dead controller left: ${strays.join(', ')}`);
    const sockDir = await socketDir(spec.runDir);
    const base = { binary, accel: verdict.accel, sockDir, version };
    let start: { kind: 'cold'; reason?: string } = { kind: 'cold' };
    if (spec.warm) {
      const warm = await this.tryWarm(spec, base, opts);
      if ('handle' in warm) {
        if (sockDir.temporary)
          void warm.handle.exited.then(() => rm(sockDir.path, { recursive: true, force: true }));
        return warm.handle;
      }
      start = { kind: 'cold', reason: warm.reason };
      opts.onProgress?.(`cold boot: ${warm.reason}`);
    }
    let lastErr: CoworkError | undefined;
    for (let attempt = 1; attempt <= MAX_PORT_ATTEMPTS; attempt++) {
      try {
        const handle = await this.boot(spec, { ...base, share, mode: { kind: 'cold' }, start }, opts);
        if (sockDir.temporary)
          void handle.exited.then(() => rm(sockDir.path, { recursive: true, force: true }));
        return handle;
      } catch (err) {
        lastErr = CoworkError.from(err, 'unavailable');
        if (!(err instanceof PortInUse)) break;
        opts.onProgress?.(
          `host port was taken before QEMU bound it; retrying (${attempt}/${MAX_PORT_ATTEMPTS})`,
        );
      }
    }
    if (sockDir.temporary) await rm(sockDir.path, { recursive: true, force: true });
    throw lastErr ?? new CoworkError('internal', 'QEMU start failed without an error');
  }

  /**
   * Restores spec's warm snapshot when there is one. A snapshot QEMU refuses, or a guest that
   * does not reach COWORK-READY from it, is deleted (the VM is stopped, fail closed) and the
   * caller boots cold with the reason; a cancelled start is not retried.
   */
  private async tryWarm(
    spec: VmSpec,
    base: { binary: string; accel: ResolvedAccel; sockDir: SocketDir; version: string },
    opts: { signal?: AbortSignal; onProgress?: (line: string) => void },
  ): Promise<{ handle: VmHandle } | { reason: string }> {
    const refused = warmRefusal(spec);
    if (refused) return { reason: `no warm start: ${refused}` };
    const shaped = warmShapedSpec(spec, this.network);
    const key = await warmKey(shaped, await this.hostConfigShape(base.accel), base.version);
    const found = await findSnapshot(spec.warm!.dir, key);
    if ('reason' in found) return found;
    opts.onProgress?.(
      `warm start from snapshot ${key} (workspace share 9p: QEMU 7.2 cannot migrate virtiofs)`,
    );
    try {
      const handle = await this.boot(
        shaped,
        {
          ...base,
          share: { mode: '9p' },
          mode: { kind: 'restore', file: found.file },
          start: { kind: 'warm' },
        },
        {
          ...opts,
          timeoutMs: Math.min(spec.bootTimeoutMs ?? WARM_RESTORE_TIMEOUT_MS, WARM_RESTORE_TIMEOUT_MS),
        },
      );
      return { handle };
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      // A forwarding port taken by someone else says nothing about the snapshot: keep it.
      if (err instanceof PortInUse) return { reason: `warm start: ${err.message}` };
      await rm(found.file, { force: true });
      const e = CoworkError.from(err, 'unavailable');
      return { reason: `the warm snapshot ${key} failed and was removed: ${e.message.split('\n')[0]}` };
    }
  }

  /** The host facts that enter the command line, for the snapshot key (paths and ports are fixed there). */
  private async hostConfigShape(accel: ResolvedAccel): Promise<QemuHostConfig> {
    return {
      hostArch: this.hostArch,
      accel,
      shareMode: '9p',
      hostPorts: {},
      qmpSocketPath: '/warm/qmp',
      consoleLogPath: '/warm/console',
      ninePSecurityModel: ninePModel(),
      tscKhz: await hostTscKhz(),
    };
  }

  /**
   * Boots spec (with `warm.dir`) to the guest's warm point and saves its memory there, keyed
   * by the VM shape; the shares may be empty placeholder folders (the guest mounts nothing).
   */
  async snapshot(
    spec: VmSpec,
    opts: { onProgress?: (line: string) => void } = {},
  ): Promise<WarmSnapshotInfo> {
    if (!spec.warm) throw new CoworkError('invalidArgument', 'snapshot needs spec.warm.dir');
    const refused = warmRefusal(spec);
    if (refused) throw new CoworkError('unsupported', `cannot take a warm snapshot: ${refused}`);
    const { binary, version, verdict } = await this.prepare(spec);
    const shaped = warmShapedSpec(spec, this.network);
    const key = await warmKey(shaped, await this.hostConfigShape(verdict.accel), version);
    await mkdir(spec.warm.dir, { recursive: true, mode: 0o700 });
    await mkdir(spec.runDir, { recursive: true, mode: 0o700 });
    const file = snapshotFile(spec.warm.dir, key);
    const sockDir = await socketDir(spec.runDir);
    const t0 = Date.now();
    opts.onProgress?.(`booting to the warm point (accelerator ${verdict.accel})`);
    try {
      const handle = await this.boot(
        shaped,
        { binary, accel: verdict.accel, sockDir, share: { mode: '9p' }, mode: { kind: 'snapshot', file } },
        opts,
      );
      await handle.stop({ graceful: false });
    } finally {
      if (sockDir.temporary) await rm(sockDir.path, { recursive: true, force: true });
    }
    const { size } = await stat(file);
    await writeSnapshotMeta(file, {
      key,
      qemuVersion: version,
      accel: verdict.accel,
      cpus: spec.cpus,
      memoryMiB: spec.memoryMiB,
      image: spec.image,
      bytes: size,
      createdAt: new Date().toISOString(),
    });
    return { file, key, bytes: size, bootMs: Date.now() - t0 };
  }

  private async boot(
    spec: VmSpec,
    ctx: {
      binary: string;
      accel: ResolvedAccel;
      share: { mode: ShareMode; virtiofsd?: string };
      sockDir: SocketDir;
      mode: BootMode;
      start?: { kind: 'warm' | 'cold'; reason?: string };
    },
    opts: { signal?: AbortSignal; onProgress?: (line: string) => void; timeoutMs?: number },
  ): Promise<VmHandle> {
    const hostPorts: Record<number, number> = {};
    for (const gp of spec.guestPorts) hostPorts[gp] = await (this.opts.allocatePort ?? freeLoopbackPort)();
    const consoleLogPath = join(spec.runDir, 'console.log');
    const stderrPath = join(spec.runDir, 'qemu.stderr.log');
    const qmpSocketPath = join(ctx.sockDir.path, 'qmp.sock');
    const virtiofsSocketPath = join(ctx.sockDir.path, 'virtiofs.sock');
    const vz = spec.deviceProfile === 'vz';
    const seedSocketPath = join(ctx.sockDir.path, 'virtiofs-seed.sock');
    await Promise.all(
      [consoleLogPath, qmpSocketPath, virtiofsSocketPath, seedSocketPath].map((p) => rm(p, { force: true })),
    );
    const ninePSecurityModel = ninePModel();
    const cmd = buildQemuArgs(spec, {
      incoming: ctx.mode.kind === 'restore',
      hostArch: this.hostArch,
      accel: ctx.accel,
      shareMode: ctx.share.mode,
      hostPorts,
      qmpSocketPath,
      consoleLogPath,
      virtiofsSocketPath: ctx.share.mode === 'virtiofs' ? virtiofsSocketPath : undefined,
      seedVirtiofsSocketPath: vz ? seedSocketPath : undefined,
      ninePSecurityModel,
      qemuBinary: ctx.binary,
      tscKhz: await hostTscKhz(),
    });
    const setpriv = await findSetpriv();
    const wrap = (bin: string, args: string[]): [string, string[]] =>
      setpriv ? [setpriv, ['--pdeathsig', 'KILL', '--', bin, ...args]] : [bin, args];

    let virtiofsd: ChildProcess | undefined;
    if (ctx.share.mode === 'virtiofs' && ctx.share.virtiofsd) {
      virtiofsd = await spawnVirtiofsd({
        binary: ctx.share.virtiofsd,
        socketPath: virtiofsSocketPath,
        sharedDir: spec.workspace.hostPath,
        logPath: join(spec.runDir, 'virtiofsd.log'),
        wrap,
        ...(spec.shareTuning ? { tuning: spec.shareTuning } : {}),
      });
    }
    let seedVirtiofsd: ChildProcess | undefined;
    if (vz && ctx.share.virtiofsd) {
      seedVirtiofsd = await spawnVirtiofsd({
        binary: ctx.share.virtiofsd,
        socketPath: seedSocketPath,
        sharedDir: spec.seed.hostPath,
        logPath: join(spec.runDir, 'virtiofsd-seed.log'),
        readOnly: true,
        wrap,
      }).catch((err: unknown) => {
        virtiofsd?.kill('SIGKILL');
        throw err;
      });
    }
    const errFile = await open(stderrPath, 'w');
    const [bin, args] = wrap(cmd.binary, cmd.args);
    const qemu = spawn(bin, args, { stdio: ['ignore', 'ignore', errFile.fd], detached: false });
    // Listen before any await: a spawn failure is emitted on the next tick.
    const spawnFailure = new Promise<Error>((resolve) => qemu.once('error', resolve));
    await errFile.close();
    const pidFiles = ['qemu.pid', 'virtiofsd.pid', 'virtiofsd-seed.pid'].map((f) => join(spec.runDir, f));
    if (qemu.pid) await writeFile(pidFiles[0]!, `${qemu.pid}\n`);
    if (virtiofsd?.pid) await writeFile(pidFiles[1]!, `${virtiofsd.pid}\n`);
    if (seedVirtiofsd?.pid) await writeFile(pidFiles[2]!, `${seedVirtiofsd.pid}\n`);
    const handle = new QemuVmHandle({
      qemu,
      virtiofsd,
      virtiofsdLogPath: join(spec.runDir, 'virtiofsd.log'),
      seedVirtiofsd,
      consoleLogPath,
      cleanupPaths: [...pidFiles, qmpSocketPath, virtiofsSocketPath, seedSocketPath],
      info: { accel: ctx.accel, shareMode: ctx.share.mode, hostPorts, start: ctx.start },
    });
    const timeoutMs = opts.timeoutMs ?? spec.bootTimeoutMs ?? DEFAULT_BOOT_TIMEOUT_MS;
    let qmp: QmpClient | undefined;
    try {
      if (ctx.mode.kind === 'restore') {
        // QEMU waits paused for the stream; the guest resumes at its warm point and takes the go.
        qmp = await QmpClient.connect(qmpSocketPath, { timeoutMs: 10_000 });
        await Promise.race([
          loadSnapshot(qmp, ctx.mode.file, timeoutMs),
          spawnFailure.then((e) => Promise.reject(e)),
        ]);
        await sendGo(hostPorts[WARM_GO_PORT]!, timeoutMs);
      }
      const steps = await waitForReady(handle, {
        consoleLogPath,
        spawnFailure,
        timeoutMs,
        signal: opts.signal,
        onProgress: opts.onProgress,
        readyLine: ctx.mode.kind === 'snapshot' ? WARM_POINT_RE : undefined,
      });
      if (steps) handle.info.bootSteps = steps;
      if (ctx.mode.kind === 'snapshot') {
        qmp = await QmpClient.connect(qmpSocketPath, { timeoutMs: 5000 });
        await saveSnapshot(qmp, ctx.mode.file, timeoutMs);
      }
    } catch (err) {
      qmp?.close();
      if (handle.state === 'starting') await handle.stop({ graceful: false });
      const stderr = (await readFile(stderrPath, 'utf8').catch(() => '')).trim();
      if (PORT_IN_USE_RE.test(stderr)) throw new PortInUse(stderr);
      const e = CoworkError.from(err, 'unavailable');
      const detail = stderr ? `\nQEMU said: ${stderr.split('\n').slice(-3).join('\n')}` : '';
      throw new CoworkError(e.code, `${e.message}${detail}`, err);
    }
    qmp ??= await QmpClient.connect(qmpSocketPath, { timeoutMs: 5000 }).catch(() => undefined);
    handle.markRunning(qmp);
    return handle;
  }
}

/** 9p `security_model`: real ownership needs root; `none` works for any user. */
function ninePModel(): NinePSecurityModel {
  return process.getuid?.() === 0 ? 'passthrough' : 'none';
}

class PortInUse extends CoworkError {
  constructor(stderr: string) {
    super(
      'unavailable',
      `a host port for forwarding was already in use (QEMU: ${stderr.split('\n').pop()}) — try again`,
    );
  }
}

interface SocketDir {
  path: string;
  temporary: boolean;
}

/** Unix socket paths must be short; use runDir when it fits, else a private temp dir. */
async function socketDir(runDir: string): Promise<SocketDir> {
  if (join(runDir, 'virtiofs.sock').length <= MAX_SOCKET_PATH) return { path: runDir, temporary: false };
  const path = await mkdtemp(join(tmpdir(), 'cowork-vm-'));
  await chmod(path, 0o700);
  return { path, temporary: true };
}

async function checkReadable(spec: VmSpec): Promise<void> {
  for (const [what, p] of [
    ['kernel', spec.image.kernel],
    ['initrd', spec.image.initrd],
    ['rootfs', spec.image.rootfs],
  ] as const) {
    const s = await stat(p).catch(() => undefined);
    if (!s?.isFile())
      throw new CoworkError(
        'notFound',
        `guest ${what} ${p} is missing — rebuild the image: cowork-vm image build`,
      );
  }
  for (const share of [spec.workspace, spec.seed]) {
    const s = await stat(share.hostPath).catch(() => undefined);
    if (!s?.isDirectory())
      throw new CoworkError('notFound', `share "${share.tag}" folder ${share.hostPath} does not exist`);
  }
}
