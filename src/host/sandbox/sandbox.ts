import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { CoworkError } from '../errors.js';
import type { HostPaths } from '../paths.js';
import { ensureSandboxKeys } from '../ssh/keys.js';
import { SshGuestSession } from '../ssh/session.js';
import type { ExecOptions, ExecResult, GuestSession } from '../ssh/types.js';
import type { Accel, Arch, ShareMode, VmDriver, VmExitInfo, VmHandle, VmSpec } from '../vm/driver.js';
import { ImageStore } from '../vm/images.js';
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
  egress?: VmSpec['egress'];
  /** Workspace paths the guest must mount read-only or pin (seed `protect.list`). */
  protect?: MountLine[];
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
  bootMs: number;
  startedAt: string;
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
  ) {
    super();
    vm.on('exit', (exit: VmExitInfo) => {
      void session.close().catch(() => {});
      this.emit('exit', { ...exit, state: this.stopping ? 'stopped' : exit.state });
    });
  }

  static async start(opts: SandboxOptions): Promise<Sandbox> {
    const progress = opts.onProgress ?? (() => {});
    const arch: Arch = opts.arch ?? (process.arch === 'arm64' ? 'aarch64' : 'x86_64');
    const t0 = Date.now();
    const store = new ImageStore(opts.paths);
    progress(`checking image "${opts.image}" (${arch})`);
    const image = await store.resolve(opts.image, arch);

    mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
    const keys = await ensureSandboxKeys(join(opts.stateDir, 'keys'));
    const ids = agentIds(opts.workspace);
    const seedDir = join(opts.stateDir, 'seed');
    writeSeed(seedDir, {
      hostPrivateKey: keys.hostPrivateKey,
      clientPublicKey: keys.authorizedKeysLine,
      agentUid: ids.uid,
      agentGid: ids.gid,
      hostname: `cowork-${basename(opts.workspace)}`,
      proxy: opts.egress ? { url: `http://${opts.egress.guestAddress}:${opts.egress.guestPort}` } : undefined,
    });

    WorkspaceGuard.writePlan(seedDir, opts.protect ?? []);

    progress(`booting guest (${opts.cpus} cpu, ${opts.memoryMiB} MiB)`);
    const vm = await opts.driver.start(
      {
        name: `cowork-${basename(opts.workspace)}`,
        cpus: opts.cpus,
        memoryMiB: opts.memoryMiB,
        image: image.boot,
        workspace: { tag: 'workspace', hostPath: opts.workspace, readOnly: false },
        seed: { tag: 'seed', hostPath: seedDir, readOnly: true },
        shareMode: opts.share,
        accel: opts.accel,
        guestPorts: [22],
        egress: opts.egress,
        runDir: join(opts.stateDir, 'run'),
      },
      { signal: opts.signal, onProgress: (l) => progress(`guest: ${l}`) },
    );

    progress('connecting over SSH');
    let session: GuestSession;
    try {
      session = await SshGuestSession.connect({
        connect: () => vm.connect(22),
        username: 'agent',
        privateKey: keys.clientPrivateKey,
        hostKey: keys.hostPublicKey,
        readyTimeoutMs: 60_000,
        isVmAlive: () => vm.state === 'running',
        maxSessions: 100, // the guest's sshd_config MaxSessions
      });
    } catch (err) {
      await vm.stop({ graceful: false, timeoutMs: 5000 }).catch(() => {});
      throw CoworkError.from(err, 'unavailable', 'the guest booted but SSH did not answer');
    }
    const info: SandboxInfo = {
      accel: vm.info.accel,
      share: vm.info.shareMode,
      image: opts.image,
      imageHash: image.manifest.recipeHash,
      sshPort: vm.info.hostPorts[22],
      vmPid: vm.pid,
      bootMs: Date.now() - t0,
      startedAt: new Date().toISOString(),
    };
    progress(`ready in ${(info.bootMs / 1000).toFixed(1)} s (accel ${info.accel}, share ${info.share})`);
    return new Sandbox(opts, vm, session, info);
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
          `the VM stopped while the command ran (QEMU ${exit.signal ? `killed by ${exit.signal}` : `exited ${exit.code}`}); ` +
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
    return this.vm.stop({ graceful: true, timeoutMs });
  }
}
