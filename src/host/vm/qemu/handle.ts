import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { rm } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { CoworkError } from '../../errors.js';
import { consoleTail } from '../console-watch.js';
import type { VmExitInfo, VmHandle, VmState } from '../driver.js';
import { describeVmExit } from '../exit-reason.js';
import type { QmpClient } from './qmp.js';

/** What QemuDriver hands the handle once QEMU is running. */
export interface QemuProcessParts {
  qemu: ChildProcess;
  virtiofsd?: ChildProcess;
  virtiofsdLogPath?: string;
  /**
   * The seed's virtiofsd (device profile 'vz'). Not watched like the workspace's: the guest reads
   * the seed once at boot and unmounts it, so its end later harms nothing; a seed that never
   * mounts fails the boot (COWORK-FATAL). Ended with QEMU.
   */
  seedVirtiofsd?: ChildProcess;
  consoleLogPath: string;
  /** Files (or a private socket folder) to delete once QEMU is gone. */
  cleanupPaths: string[];
  /** What the driver used and learnt (VmHandle['info']: accel, share, ports, start, boot steps). */
  info: VmHandle['info'];
}

const DEFAULT_STOP_TIMEOUT_MS = 10_000;
const QUIT_GRACE_MS = 3_000;

/**
 * One running QEMU guest. State: starting → running → stopping → stopped, or → crashed when
 * the process ended without stop() having been called (guest panic, poweroff, kill -9, OOM).
 * `exited` resolves exactly once; 'exit' is emitted once with the same info.
 */
export class QemuVmHandle extends EventEmitter implements VmHandle {
  private _state: VmState = 'starting';
  private stopRequested = false;
  private qmp: QmpClient | undefined;
  readonly exited: Promise<VmExitInfo>;
  readonly consoleLogPath: string;
  readonly info: QemuProcessParts['info'];
  private readonly onHostExit = (): void => this.killSync();
  private helperFailure: string | undefined;

  constructor(private readonly parts: QemuProcessParts) {
    super();
    this.consoleLogPath = parts.consoleLogPath;
    this.info = parts.info;
    // Last line of defence if the host process exits without stopping us (setpriv's pdeathsig
    // covers SIGKILL of the host; this covers normal exits where setpriv is unavailable).
    process.once('exit', this.onHostExit);
    if (parts.virtiofsd) this.watchVirtiofsd(parts.virtiofsd);
    this.exited = new Promise<VmExitInfo>((resolve) => {
      let finished = false;
      const finish = async (code: number | null, signal: NodeJS.Signals | null): Promise<void> => {
        if (finished) return;
        finished = true;
        process.off('exit', this.onHostExit);
        this.qmp?.close();
        if (parts.virtiofsd) await reap(parts.virtiofsd);
        if (parts.seedVirtiofsd) await reap(parts.seedVirtiofsd);
        await Promise.all(
          parts.cleanupPaths.map((p) => rm(p, { force: true, recursive: true }).catch(() => {})),
        );
        const state = this.stopRequested ? 'stopped' : 'crashed';
        this._state = state;
        const tail = await consoleTail(parts.consoleLogPath);
        const note = this.helperFailure ? `\n[host] ${this.helperFailure}` : '';
        const reason = describeVmExit('qemu', code, signal, this.helperFailure);
        const info: VmExitInfo = { state, code, signal, reason, consoleTail: tail + note };
        resolve(info);
        this.emit('exit', info);
      };
      if (parts.qemu.exitCode !== null || parts.qemu.signalCode !== null) {
        void finish(parts.qemu.exitCode, parts.qemu.signalCode);
      } else {
        parts.qemu.once('exit', (code, signal) => void finish(code, signal));
        // A process that could not be spawned never emits 'exit'.
        parts.qemu.once('error', () => {
          if (parts.qemu.pid === undefined) void finish(null, null);
        });
      }
    });
  }

  /**
   * Without virtiofsd the workspace hangs every guest process that touches it: fail closed by
   * ending the VM (state 'crashed') instead of leaving a guest that can no longer work.
   */
  private watchVirtiofsd(virtiofsd: ChildProcess): void {
    virtiofsd.once('exit', (code, signal) => {
      void (async () => {
        // When QEMU dies first, virtiofsd follows it: give QEMU's exit a moment to be seen so
        // a QEMU crash is not blamed on virtiofsd.
        await new Promise((r) => setTimeout(r, 500));
        const qemu = this.parts.qemu;
        if (this.stopRequested || this.isGone() || qemu.exitCode !== null || qemu.signalCode !== null) return;
        const log = this.parts.virtiofsdLogPath ? await consoleTail(this.parts.virtiofsdLogPath, 3) : '';
        const how = signal ?? `code ${code}`;
        this.helperFailure = `virtiofsd (workspace share) exited (${how}) while the VM ran: ${log.replace(/\n/g, ' | ')}`;
        this.killSync();
      })();
    });
  }

  get state(): VmState {
    return this._state;
  }

  get pid(): number | undefined {
    return this.parts.qemu.pid;
  }

  /** Called by the driver when the readiness line arrived. */
  markRunning(qmp: QmpClient | undefined): void {
    this.qmp = qmp;
    if (this._state === 'starting') this._state = 'running';
  }

  async connect(guestPort: number): Promise<Duplex> {
    if (this._state !== 'running') {
      throw new CoworkError(
        'invalidState',
        `the VM is ${this._state}; start it before connecting to port ${guestPort}`,
      );
    }
    const hostPort = this.info.hostPorts[guestPort];
    if (hostPort === undefined) {
      throw new CoworkError(
        'invalidArgument',
        `guest port ${guestPort} is not forwarded (add it to spec.guestPorts)`,
      );
    }
    return new Promise<Duplex>((resolve, reject) => {
      const socket = tcpConnect({ host: '127.0.0.1', port: hostPort });
      socket.once('error', (err) =>
        reject(
          CoworkError.from(
            err,
            'unavailable',
            `cannot reach guest port ${guestPort} via 127.0.0.1:${hostPort}`,
          ),
        ),
      );
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        resolve(socket);
      });
    });
  }

  /**
   * graceful (default): ACPI power-down via QMP, wait up to timeoutMs; then QMP quit, then SIGKILL.
   * Not graceful: QMP quit, then SIGKILL. Always resolves when the process is gone.
   */
  async stop(opts: { graceful?: boolean; timeoutMs?: number } = {}): Promise<VmExitInfo> {
    if (this.isGone()) return this.exited;
    this.stopRequested = true;
    this._state = 'stopping';
    const graceful = opts.graceful ?? true;
    const timeoutMs = opts.timeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    if (graceful && (await this.tryQmp('system_powerdown')) && (await this.waitGone(timeoutMs)))
      return this.exited;
    if ((await this.tryQmp('quit')) && (await this.waitGone(QUIT_GRACE_MS))) return this.exited;
    if (!this.isGone()) this.parts.qemu.kill('SIGKILL');
    return this.exited;
  }

  private isGone(): boolean {
    return this._state === 'stopped' || this._state === 'crashed';
  }

  private async tryQmp(command: string): Promise<boolean> {
    if (!this.qmp || this.qmp.isClosed) return false;
    try {
      await this.qmp.execute(command, undefined, { timeoutMs: 2000 });
      return true;
    } catch {
      // QEMU may close the socket while answering `quit`; the exit wait below decides.
      return command === 'quit';
    }
  }

  private async waitGone(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    const done = await Promise.race([this.exited.then(() => true as const), timeout]);
    clearTimeout(timer);
    return done;
  }

  private killSync(): void {
    for (const child of [this.parts.qemu, this.parts.virtiofsd, this.parts.seedVirtiofsd]) {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }
}

/** Ends a helper process and waits (briefly) until it is really gone. */
async function reap(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([gone, new Promise<void>((resolve) => (timer = setTimeout(resolve, 2000)))]);
  clearTimeout(timer);
}
