import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { release } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { CoworkError } from '../../errors.js';
import { hostPaths } from '../../paths.js';
import { ConsoleWatcher } from '../console-watch.js';
import type {
  DriverCapabilities,
  GuestNetwork,
  ProbeResult,
  VmDriver,
  VmExitInfo,
  VmHandle,
  VmSpec,
  VmState,
} from '../driver.js';
import { describeVmExit } from '../exit-reason.js';
import { loadVzBridge, type VzConfig } from './native.js';

/**
 * Virtualization.framework driver (macOS 13+). Thin on purpose: the VM lives in a child process
 * (runner.ts) started from an entitled copy of node, and this class only speaks the same
 * VmDriver contract as QEMU. No NIC: SSH and the egress proxy travel over vsock.
 * NEVER RUN: no Mac exists where this project is developed (see README, "macOS status").
 */
export const VZ_CAPABILITIES: DriverCapabilities = {
  shareModes: ['virtiofs'],
  accels: ['auto', 'hvf'],
  gracefulShutdown: true,
};

/**
 * No NIC: sshd and the egress proxy travel over vsock. cowork-init (transport=vsock) listens on
 * the guest's 127.0.0.1 at the proxy port and relays each connection to host CID 2, where the
 * runner relays it on to spec.egress.hostPort.
 */
export const VZ_GUEST_NETWORK: GuestNetwork = {
  transport: 'vsock',
  egress: { address: '127.0.0.1', port: 3128 },
};

/** The entitled node binary made by scripts/sign-node-macos.sh. */
export function signedNodePath(env: NodeJS.ProcessEnv = process.env): string {
  return env.COWORK_VM_VZ_NODE || join(hostPaths(env).stateDir, 'vz', 'node');
}

export class VzDriver implements VmDriver {
  readonly name = 'vz' as const;
  readonly capabilities = VZ_CAPABILITIES;
  readonly network = VZ_GUEST_NETWORK;

  async probe(): Promise<ProbeResult> {
    if (process.platform !== 'darwin') {
      return {
        ok: false,
        reason: 'Virtualization.framework exists on macOS only',
        fix: 'use the QEMU driver on Linux',
      };
    }
    const darwinMajor = Number(release().split('.')[0]);
    if (darwinMajor < 22) return { ok: false, reason: 'macOS 13 or newer is required', fix: 'update macOS' };
    try {
      loadVzBridge();
    } catch (err) {
      return { ok: false, reason: (err as Error).message, fix: 'npx node-gyp rebuild' };
    }
    const node = signedNodePath();
    if (!existsSync(node)) {
      return {
        ok: false,
        reason: `no entitled node binary at ${node} (Virtualization.framework needs com.apple.security.virtualization)`,
        fix: 'bash scripts/sign-node-macos.sh',
      };
    }
    return {
      ok: true,
      accel: 'hvf',
      accelReason: 'Virtualization.framework always uses the hypervisor',
      details: { node },
    };
  }

  async start(
    spec: VmSpec,
    opts: { signal?: AbortSignal; onProgress?: (line: string) => void } = {},
  ): Promise<VmHandle> {
    mkdirSync(spec.runDir, { recursive: true, mode: 0o700 });
    const consoleLogPath = join(spec.runDir, 'console.log');
    writeFileSync(consoleLogPath, '');
    const config: VzConfig = {
      kernel: spec.image.kernel,
      initrd: spec.image.initrd,
      rootfs: spec.image.rootfs,
      cmdline: [
        'console=hvc0',
        'quiet',
        'panic=-1',
        'cowork.root=/dev/vda',
        'cowork.share=virtiofs',
        'cowork.transport=vsock',
        ...(spec.kernelArgs ?? []),
      ].join(' '),
      cpus: spec.cpus,
      memoryMiB: spec.memoryMiB,
      shares: [spec.workspace, spec.seed].map((s) => ({
        tag: s.tag,
        path: s.hostPath,
        readOnly: s.readOnly,
      })),
      consoleLog: consoleLogPath,
    };
    const runner = fileURLToPath(new URL('./runner.js', import.meta.url));
    const child = spawn(signedNodePath(), [runner], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const handle = new VzVmHandle(child, consoleLogPath);
    child.send({ type: 'start', config });
    if (spec.egress)
      child.send({ type: 'listen', port: spec.egress.guestPort, hostPort: spec.egress.hostPort });
    await handle.waitReady(spec.bootTimeoutMs ?? 60_000, opts.onProgress, opts.signal);
    return handle;
  }
}

class VzVmHandle extends EventEmitter implements VmHandle {
  state: VmState = 'starting';
  readonly info = {
    accel: 'hvf' as const,
    shareMode: 'virtiofs' as const,
    hostPorts: {} as Record<number, number>,
  };
  readonly exited: Promise<VmExitInfo>;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (s: Duplex) => void; reject: (e: Error) => void }>();
  private readonly watcher: ConsoleWatcher;
  private readyLine: ((ok: boolean, why: string) => void) | undefined;
  private stopRequested = false;

  constructor(
    private readonly child: ChildProcess,
    readonly consoleLogPath: string,
  ) {
    super();
    this.watcher = new ConsoleWatcher(consoleLogPath, (line) => {
      if (line.startsWith('COWORK-READY')) this.readyLine?.(true, line);
      else if (line.startsWith('COWORK-FATAL')) this.readyLine?.(false, line);
    });
    child.on('message', (m: { type: string; id?: number; message?: string }, sock?: Socket) => {
      const w = m.id !== undefined ? this.waiting.get(m.id) : undefined;
      if (m.type === 'connected' && w && sock) {
        this.waiting.delete(m.id!);
        w.resolve(sock);
      } else if (m.type === 'error' && w) {
        this.waiting.delete(m.id!);
        w.reject(new CoworkError('unavailable', `vsock: ${m.message}`));
      } else if (m.type === 'error') this.readyLine?.(false, m.message ?? 'VZ error');
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.watcher.stop();
        const info: VmExitInfo = {
          state: this.stopRequested ? 'stopped' : 'crashed',
          code,
          signal,
          reason: describeVmExit('Virtualization.framework runner', code, signal),
          consoleTail: tail(consoleLogPath),
        };
        this.state = info.state;
        this.readyLine?.(false, 'the VZ runner exited');
        for (const w of this.waiting.values()) w.reject(new CoworkError('unavailable', 'the VM stopped'));
        this.emit('exit', info);
        resolve(info);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  waitReady(timeoutMs: number, onProgress?: (l: string) => void, signal?: AbortSignal): Promise<void> {
    this.watcher.start();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => finish(false, `no readiness line within ${timeoutMs / 1000} s`),
        timeoutMs,
      );
      const finish = (ok: boolean, why: string) => {
        clearTimeout(timer);
        this.readyLine = undefined;
        if (ok) {
          this.state = 'running';
          resolve();
        } else {
          void this.stop({ graceful: false });
          reject(
            new CoworkError('unavailable', `the guest did not boot: ${why}\n${tail(this.consoleLogPath)}`),
          );
        }
      };
      this.readyLine = finish;
      signal?.addEventListener('abort', () => finish(false, 'cancelled'), { once: true });
      onProgress?.('booting with Virtualization.framework');
    });
  }

  connect(guestPort: number): Promise<Duplex> {
    if (this.state !== 'running')
      return Promise.reject(new CoworkError('unavailable', `the VM is ${this.state}`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.child.send({ type: 'connect', id, port: guestPort });
    });
  }

  async stop(opts: { graceful?: boolean; timeoutMs?: number } = {}): Promise<VmExitInfo> {
    this.stopRequested = true;
    if (this.child.exitCode === null && this.child.connected) {
      this.state = 'stopping';
      this.child.send({ type: 'stop', graceful: opts.graceful ?? true });
      const timer = setTimeout(() => this.child.kill('SIGKILL'), opts.timeoutMs ?? 15_000);
      const info = await this.exited;
      clearTimeout(timer);
      return info;
    }
    return this.exited;
  }
}

function tail(path: string): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '';
  }
}
