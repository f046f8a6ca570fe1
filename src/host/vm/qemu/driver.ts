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
} from '../driver.js';
import { type ResolvedAccel, resolveAccel } from './accel.js';
import { buildQemuArgs, type NinePSecurityModel, qemuBinaryFor } from './args.js';
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

  async start(
    spec: VmSpec,
    opts: { signal?: AbortSignal; onProgress?: (line: string) => void } = {},
  ): Promise<VmHandle> {
    opts.signal?.throwIfAborted();
    const binaryName = this.binaryFor(spec.image.arch);
    const binary = await findExecutable(binaryName, this.env);
    if (!binary) throw new CoworkError('unavailable', `${binaryName} is not installed — run: ${SETUP_FIX}`);
    await checkReadable(spec);
    const version = (await qemuVersion(binary)) ?? 'unknown';
    const verdict = await resolveAccel(
      spec.accel,
      this.accelContext(binary, version, spec.image.arch, spec.image.kernel),
    );
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
    let lastErr: CoworkError | undefined;
    for (let attempt = 1; attempt <= MAX_PORT_ATTEMPTS; attempt++) {
      try {
        const handle = await this.boot(spec, { binary, accel: verdict.accel, share, sockDir }, opts);
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

  private async boot(
    spec: VmSpec,
    ctx: {
      binary: string;
      accel: ResolvedAccel;
      share: { mode: ShareMode; virtiofsd?: string };
      sockDir: SocketDir;
    },
    opts: { signal?: AbortSignal; onProgress?: (line: string) => void },
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
    const ninePSecurityModel: NinePSecurityModel = process.getuid?.() === 0 ? 'passthrough' : 'none';
    const cmd = buildQemuArgs(spec, {
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
      info: { accel: ctx.accel, shareMode: ctx.share.mode, hostPorts },
    });
    try {
      await waitForReady(handle, {
        consoleLogPath,
        spawnFailure,
        timeoutMs: spec.bootTimeoutMs ?? DEFAULT_BOOT_TIMEOUT_MS,
        ...opts,
      });
    } catch (err) {
      if (handle.state === 'starting') await handle.stop({ graceful: false });
      const stderr = (await readFile(stderrPath, 'utf8').catch(() => '')).trim();
      if (PORT_IN_USE_RE.test(stderr)) throw new PortInUse(stderr);
      const e = CoworkError.from(err, 'unavailable');
      const detail = stderr ? `\nQEMU said: ${stderr.split('\n').slice(-3).join('\n')}` : '';
      throw new CoworkError(e.code, `${e.message}${detail}`, err);
    }
    const qmp = await QmpClient.connect(qmpSocketPath, { timeoutMs: 5000 }).catch(() => undefined);
    handle.markRunning(qmp);
    return handle;
  }
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
