import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import { basename, join } from 'node:path';
import { type CacheDiskInfo, ensureCacheDisk } from '../cache/index.js';
import { CoworkError } from '../errors.js';
import type { HostPaths } from '../paths.js';
import { ensureSandboxKeys, type SandboxKeys } from '../ssh/keys.js';
import { SshGuestSession } from '../ssh/session.js';
import type { ExecOptions, ExecResult, GuestSession } from '../ssh/types.js';
import type {
  Accel,
  Arch,
  ShareMode,
  ShareTuning,
  VmDriver,
  VmExitInfo,
  VmHandle,
  VmSpec,
} from '../vm/driver.js';
import { ImageStore, type ResolvedImage } from '../vm/images.js';
import { type MountLine, WorkspaceGuard } from '../workspace/index.js';
import { agentIds, writeSeed } from './seed.js';

export interface SandboxOptions {
  workspace: string; // real path, already validated
  stateDir: string; // per-sandbox state folder
  paths: HostPaths;
  driver: VmDriver;
  image: string;
  cpus: number;
  memoryMiB: number;
  accel: Accel;
  share: ShareMode | 'auto';
  arch?: Arch;
  /**
   * The host's egress proxy (its loopback port). Where the guest reaches it, and who carries the
   * connections (the driver, or this sandbox's SSH session), is the driver's `network.egress`,
   * never the caller's choice.
   */
  egress?: { hostPort: number };
  /** Workspace paths the guest must mount read-only or pin (seed `protect.list`). */
  protect?: MountLine[];
  /** The cache disk ([cache]): absent or disabled = none; a driver without the capability starts without one. */
  cache?: { enabled: boolean; sizeGiB: number; shared?: string };
  /** CA certificates (PEM) the guest trusts at boot: the egress CA, the host's added CAs (guest-trust.ts). */
  trust?: readonly string[];
  /**
   * `[vm] warm`: restore the image's warm snapshot for this VM shape when there is one
   * (`cowork-vm image warm` takes it); the driver boots cold, saying why, when there is none.
   */
  warm?: boolean;
  /** The share's knobs, for the bench only (VmSpec.shareTuning); never from a config. */
  shareTuning?: ShareTuning;
  onProgress?: (line: string) => void;
  signal?: AbortSignal;
}

export interface SandboxInfo {
  accel: string;
  share: ShareMode;
  image: string;
  imageHash: string;
  sshPort?: number;
  vmPid?: number;
  /** The egress proxy as the guest reaches it (for HTTP_PROXY-style settings), when there is one. */
  guestProxyUrl?: string;
  bootMs: number;
  /** Where the guest's boot went: each step's end in seconds of guest uptime (COWORK-TIME). */
  bootSteps?: Record<string, number>;
  startedAt: string;
  /** The cache disk attached to this boot, if any. */
  cache?: Pick<CacheDiskInfo, 'name' | 'sizeBytes' | 'kind'>;
  /** Restored from a warm snapshot, or booted; with why not warm when warm was asked for. */
  start: 'warm' | 'cold';
  startReason?: string;
}

/**
 * A booted guest with the workspace mounted and one SSH session to it. Knows nothing of policy:
 * the Controller is the only caller of `exec` and puts every command through the policy engine
 * first. Emits 'exit' (VmExitInfo) when the VM ends, whether by stop() or by a crash.
 */
export class Sandbox extends EventEmitter {
  private stopping = false;

  private constructor(
    readonly opts: SandboxOptions,
    readonly vm: VmHandle,
    readonly session: GuestSession,
    readonly info: SandboxInfo,
    private readonly releaseCache: () => void = () => {},
  ) {
    super();
    vm.on('exit', (exit: VmExitInfo) => {
      void session.close().catch(() => {});
      this.releaseCache();
      this.emit('exit', { ...exit, state: this.stopping ? 'stopped' : exit.state });
    });
  }

  static async start(opts: SandboxOptions): Promise<Sandbox> {
    const progress = opts.onProgress ?? (() => {});
    const arch: Arch = opts.arch ?? (process.arch === 'arm64' ? 'aarch64' : 'x86_64');
    const t0 = Date.now();
    checkCapabilities(opts.driver, { share: opts.share, accel: opts.accel });
    progress(`checking image "${opts.image}" (${arch})`);
    const image = await new ImageStore(opts.paths).resolve(opts.image, arch);
    mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
    const keys = await ensureSandboxKeys(join(opts.stateDir, 'keys'));
    const egress = guestEgress(opts);
    const seedDir = prepareSeed(opts, keys, egress);
    const cache = attachCache(opts, progress);

    if (opts.warm && !opts.driver.capabilities.warmStart)
      progress(`cold boot: the ${opts.driver.name} driver has no warm start`);
    progress(`booting guest (${opts.cpus} cpu, ${opts.memoryMiB} MiB)`);
    let vm: VmHandle;
    let session: GuestSession;
    try {
      vm = await opts.driver.start(
        {
          ...vmSpec(opts, image, seedDir, egress),
          ...(cache ? { cacheDisk: { path: cache.info.path } } : {}),
        },
        { signal: opts.signal, onProgress: (l) => progress(`guest: ${l}`) },
      );
      progress('connecting over SSH');
      session = await connectSession(vm, keys, egress);
    } catch (err) {
      cache?.release();
      throw err;
    }
    const info: SandboxInfo = {
      accel: vm.info.accel,
      share: vm.info.shareMode,
      image: opts.image,
      imageHash: image.manifest.recipeHash,
      sshPort: vm.info.hostPorts[22],
      vmPid: vm.pid,
      guestProxyUrl: egress && `http://${egress.guestAddress}:${egress.guestPort}`,
      bootMs: Date.now() - t0,
      ...(vm.info.bootSteps ? { bootSteps: vm.info.bootSteps } : {}),
      start: vm.info.start?.kind ?? 'cold',
      ...(vm.info.start?.reason ? { startReason: vm.info.start.reason } : {}),
      startedAt: new Date().toISOString(),
      ...(cache
        ? { cache: { name: cache.info.name, sizeBytes: cache.info.sizeBytes, kind: cache.info.kind } }
        : {}),
    };
    progress(
      `ready in ${(info.bootMs / 1000).toFixed(1)} s (${info.start} start, accel ${info.accel}, share ${info.share})`,
    );
    return new Sandbox(opts, vm, session, info, cache?.release);
  }

  get running(): boolean {
    return this.vm.state === 'running';
  }

  /** Raw guest exec. Callers outside the Controller must not use this (policy is skipped here). */
  async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    if (this.vm.state !== 'running') {
      throw new CoworkError(
        'unavailable',
        `the VM is ${this.vm.state} — start it again with \`cowork-vm start\``,
      );
    }
    try {
      return await this.session.exec(command, opts);
    } catch (err) {
      // A dead VM explains a lost connection better than the SSH error does.
      const exit = await Promise.race([
        this.vm.exited,
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 1500)),
      ]);
      if (exit) {
        throw new CoworkError(
          'unavailable',
          `the VM stopped while the command ran (${exit.reason}); ` +
            'files already written to the workspace are intact — start it again with `cowork-vm start`',
          err,
        );
      }
      throw err;
    }
  }

  async stop(timeoutMs = 15_000): Promise<VmExitInfo> {
    this.stopping = true;
    if (this.vm.state === 'running') {
      // Flush guest page cache for the workspace before powering off.
      await this.session.exec('sync', { timeoutMs: 5000 }).catch(() => {});
    }
    await this.session.close().catch(() => {});
    return this.vm.stop({ graceful: this.opts.driver.capabilities.gracefulShutdown, timeoutMs });
  }
}

/**
 * A request the driver cannot honour fails here, before anything is written or booted, naming
 * the setting and what this driver offers. Decided from the declared capabilities alone.
 */
export function checkCapabilities(
  driver: Pick<VmDriver, 'name' | 'capabilities'>,
  want: { share: ShareMode | 'auto'; accel: Accel },
): void {
  const { shareModes, accels } = driver.capabilities;
  if (want.share !== 'auto' && !shareModes.includes(want.share)) {
    throw new CoworkError(
      'invalidArgument',
      `vm.share "${want.share}" is not offered by the ${driver.name} driver (it offers ${shareModes.join(', ')}) — use one of those or "auto"`,
    );
  }
  if (!accels.includes(want.accel)) {
    throw new CoworkError(
      'invalidArgument',
      `vm.accel "${want.accel}" is not offered by the ${driver.name} driver (it offers ${accels.join(', ')})`,
    );
  }
}

/**
 * The cache disk for this boot, created when missing; none when [cache] is off, or when the
 * driver cannot attach one (said once, the start goes on: caches are an optimisation).
 */
function attachCache(opts: SandboxOptions, progress: (line: string) => void) {
  if (!opts.cache?.enabled) return undefined;
  if (!opts.driver.capabilities.cacheDisk) {
    progress(
      `no cache disk: the ${opts.driver.name} driver cannot attach one (caches start empty each time)`,
    );
    return undefined;
  }
  const c = ensureCacheDisk({
    paths: opts.paths,
    workspace: opts.workspace,
    shared: opts.cache.shared || undefined,
    sizeGiB: opts.cache.sizeGiB,
    owner: agentIds(opts.workspace),
    onNotice: progress,
  });
  progress(
    `cache disk ${c.info.name} (${opts.cache.shared ? 'shared' : 'this workspace'}, up to ${opts.cache.sizeGiB} GiB)`,
  );
  return c;
}

interface GuestEgress {
  hostPort: number;
  guestAddress: string;
  guestPort: number;
  relay: 'driver' | 'ssh';
}

/** The egress proxy with the guest side taken from the driver's network. */
export function guestEgress(opts: Pick<SandboxOptions, 'egress' | 'driver'>): GuestEgress | undefined {
  if (!opts.egress) return undefined;
  const { address, port, relay } = opts.driver.network.egress;
  return { hostPort: opts.egress.hostPort, guestAddress: address, guestPort: port, relay };
}

/** Writes the seed share and the protected-path plan for this boot; returns its folder. */
function prepareSeed(opts: SandboxOptions, keys: SandboxKeys, egress: GuestEgress | undefined): string {
  const ids = agentIds(opts.workspace);
  const seedDir = join(opts.stateDir, 'seed');
  writeSeed(seedDir, {
    hostPrivateKey: keys.hostPrivateKey,
    clientPublicKey: keys.authorizedKeysLine,
    agentUid: ids.uid,
    agentGid: ids.gid,
    hostname: `cowork-${basename(opts.workspace)}`,
    guestCidr: opts.driver.network.guestCidr,
    proxy: egress ? { url: `http://${egress.guestAddress}:${egress.guestPort}` } : undefined,
    ...(opts.trust && opts.trust.length > 0 ? { trust: opts.trust } : {}),
  });
  WorkspaceGuard.writePlan(seedDir, opts.protect ?? []);
  return seedDir;
}

/** Where the image's warm snapshots live: inside its cache folder, so they go with the image. */
export function warmDir(image: ResolvedImage): string {
  return join(image.dir, 'warm');
}

/** The VmSpec of a sandbox boot; `cowork-vm image warm` builds its snapshot's spec with it too. */
export function vmSpec(
  opts: Pick<
    SandboxOptions,
    'workspace' | 'cpus' | 'memoryMiB' | 'share' | 'accel' | 'stateDir' | 'warm' | 'driver' | 'shareTuning'
  >,
  image: ResolvedImage,
  seedDir: string,
  egress: GuestEgress | undefined,
): VmSpec {
  return {
    name: `cowork-${basename(opts.workspace)}`,
    cpus: opts.cpus,
    memoryMiB: opts.memoryMiB,
    image: image.boot,
    workspace: { tag: 'workspace', hostPath: opts.workspace, readOnly: false },
    seed: { tag: 'seed', hostPath: seedDir, readOnly: true },
    shareMode: opts.share,
    accel: opts.accel,
    guestPorts: [22],
    ...(egress?.relay === 'driver'
      ? {
          egress: {
            hostPort: egress.hostPort,
            guestAddress: egress.guestAddress,
            guestPort: egress.guestPort,
          },
        }
      : {}),
    runDir: join(opts.stateDir, 'run'),
    ...(opts.shareTuning ? { shareTuning: opts.shareTuning } : {}),
    ...(opts.warm && opts.driver.capabilities.warmStart ? { warm: { dir: warmDir(image) } } : {}),
  };
}

/**
 * One SSH session over the driver's transport; a guest whose sshd never answers is stopped, and
 * so is one whose sshd will not listen for the egress proxy (relay 'ssh'): no sandbox starts
 * with its proxy port missing or taken by something else.
 */
async function connectSession(
  vm: VmHandle,
  keys: SandboxKeys,
  egress: GuestEgress | undefined,
): Promise<GuestSession> {
  const proxyPort = egress?.hostPort;
  try {
    return await SshGuestSession.connect({
      connect: () => vm.connect(22),
      username: 'agent',
      privateKey: keys.clientPrivateKey,
      hostKey: keys.hostPublicKey,
      readyTimeoutMs: 60_000,
      isVmAlive: () => vm.state === 'running',
      maxSessions: 100, // the guest's sshd_config MaxSessions
      ...(egress?.relay === 'ssh' && proxyPort !== undefined
        ? {
            guestListener: {
              guestHost: egress.guestAddress,
              guestPort: egress.guestPort,
              connect: () =>
                net.connect({ host: '127.0.0.1', port: proxyPort, allowHalfOpen: true, noDelay: true }),
              what: 'the egress proxy',
            },
          }
        : {}),
    });
  } catch (err) {
    await vm.stop({ graceful: false, timeoutMs: 5000 }).catch(() => {});
    throw CoworkError.from(err, 'unavailable', 'the guest booted but SSH did not answer');
  }
}
