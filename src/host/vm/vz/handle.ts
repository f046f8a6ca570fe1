import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { CoworkError } from '../../errors.js';
import { parseBootSteps } from '../boot-steps.js';
import { ConsoleWatcher, consoleTail } from '../console-watch.js';
import type { VmExitInfo, VmHandle, VmState } from '../driver.js';
import { describeVmExit } from '../exit-reason.js';
import { FromRunner, type ToRunner } from './ipc.js';

/** What `ps` shows for the VM's process: the runner under the signed node. */
export const VZ_PROCESS = 'vz runner';
/** After the runner's own forced stop had its chance, the parent SIGKILLs it this much later. */
const KILL_MARGIN_MS = 5_000;
const DEFAULT_STOP_TIMEOUT_MS = 10_000;

type Pending = { resolve: (s: Duplex) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

/**
 * One VZ guest, seen through its runner process. State: starting → running (readiness line) →
 * stopping → stopped, or → crashed. How the end is classified (matching the QEMU driver, whose
 * handle calls every end without stop() a crash):
 *   - stop() was called and the VM stopped            → 'stopped'
 *   - the guest powered itself off without stop()     → 'crashed', reason "the guest powered itself off"
 *     (a sandbox guest never powers off on its own: to the sandbox it is gone, like a QEMU poweroff)
 *   - VZ reported an error (didStopWithError)         → 'crashed', reason carries VZ's error text
 *   - the runner died (SIGKILL, crash)                → 'crashed', reason from describeVmExit
 * `exited` resolves exactly once, and 'exit' is emitted once with the same info.
 */
export class VzVmHandle extends EventEmitter implements VmHandle {
  private _state: VmState = 'starting';
  readonly info: VmHandle['info'] = { accel: 'hvf', shareMode: 'virtiofs', hostPorts: {} };
  readonly exited: Promise<VmExitInfo>;
  private nextId = 1;
  private readonly waiting = new Map<number, Pending>();
  private readonly watcher: ConsoleWatcher;
  private stopRequested = false;
  private vmEnd: { state: 'stopped' | 'error'; detail?: string } | undefined;
  private startFailure: string | undefined;
  private ready = false;
  private startedFlag = false;
  private readonly progress = new EventEmitter();

  constructor(
    private readonly child: ChildProcess,
    readonly consoleLogPath: string,
    private readonly guestPorts: readonly number[],
    private readonly connectTimeoutMs: number,
  ) {
    super();
    this.watcher = new ConsoleWatcher(consoleLogPath, (line) => {
      const steps = parseBootSteps(line);
      if (steps) this.info.bootSteps = steps;
      else if (line.startsWith('COWORK-READY')) {
        this.ready = true;
        this.progress.emit('change');
      } else if (line.startsWith('COWORK-FATAL')) this.fail(line);
    });
    this.watcher.start();
    child.on('message', (raw: unknown, sock?: Socket) => this.onMessage(raw, sock));
    this.exited = new Promise((resolve) => {
      let done = false;
      const finish = async (code: number | null, signal: NodeJS.Signals | null) => {
        if (done) return;
        done = true;
        this.watcher.stop();
        await this.watcher.poll().catch(() => {});
        const info: VmExitInfo = {
          ...this.classify(code, signal),
          code,
          signal,
          consoleTail: await consoleTail(consoleLogPath),
        };
        this._state = info.state;
        for (const w of this.waiting.values()) {
          clearTimeout(w.timer);
          w.reject(new CoworkError('invalidState', `the VM ${info.state}: ${info.reason}`));
        }
        this.waiting.clear();
        this.progress.emit('change');
        resolve(info);
        this.emit('exit', info);
      };
      // 'close', not 'exit': it comes after the IPC channel drained, so the runner's last
      // 'state' message has been read by then.
      child.once('close', (code, signal) => void finish(code, signal));
      // A runner that could not be spawned (no signed node) never emits 'exit'.
      child.once('error', () => {
        if (child.pid === undefined) void finish(null, null);
      });
    });
  }

  get state(): VmState {
    return this._state;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private classify(code: number | null, signal: NodeJS.Signals | null): Pick<VmExitInfo, 'state' | 'reason'> {
    if (this.startFailure) {
      return { state: 'crashed', reason: this.startFailure };
    }
    if (this.vmEnd?.state === 'error') {
      return {
        state: 'crashed',
        reason: `Virtualization.framework stopped the VM with an error: ${this.vmEnd.detail ?? 'no detail'}`,
      };
    }
    if (this.vmEnd?.state === 'stopped' && !signal) {
      if (this.stopRequested) return { state: 'stopped', reason: describeVmExit(VZ_PROCESS, code, signal) };
      return {
        state: 'crashed',
        reason: `the guest powered itself off (${VZ_PROCESS} exited with code ${code})`,
      };
    }
    const state = this.stopRequested && code === 0 ? 'stopped' : 'crashed';
    return { state, reason: describeVmExit(VZ_PROCESS, code, signal) };
  }

  private onMessage(raw: unknown, sock?: Socket): void {
    const parsed = FromRunner.safeParse(raw);
    if (!parsed.success) {
      this.fail(`the VZ runner sent a message this driver does not know: ${parsed.error.message}`);
      return;
    }
    const m = parsed.data;
    switch (m.type) {
      case 'started':
        this.startedFlag = true;
        this.progress.emit('change');
        return;
      case 'state':
        this.vmEnd = { state: m.state, detail: m.detail };
        return;
      case 'failed':
        if (m.phase === 'create' || m.phase === 'start') {
          const what = m.phase === 'create' ? 'refused the VM configuration' : 'could not start the VM';
          this.fail(`Virtualization.framework ${what}: ${m.message}`);
        }
        return;
      case 'connected':
      case 'connect-failed': {
        const w = this.waiting.get(m.id);
        if (!w) {
          sock?.destroy();
          return;
        }
        this.waiting.delete(m.id);
        clearTimeout(w.timer);
        if (m.type === 'connected' && sock) w.resolve(sock);
        else if (m.type === 'connected')
          w.reject(new CoworkError('internal', 'the VZ runner sent no socket'));
        else w.reject(this.connectError(m.message, m.timedOut));
        return;
      }
    }
  }

  private fail(why: string): void {
    this.startFailure ??= why;
    this.progress.emit('change');
  }

  private connectError(message: string, timedOut: boolean): CoworkError {
    // The port is filled in by connect(); this keeps the wording in one place.
    return new CoworkError(
      'unavailable',
      timedOut
        ? `the guest did not accept the vsock connection within ${this.connectTimeoutMs / 1000} s (${message})`
        : `vsock connection failed: ${message}`,
    );
  }

  send(m: ToRunner): void {
    if (this.child.connected) this.child.send(m);
  }

  /** Resolves when the runner reported start() done; rejects with the runner's reason. */
  waitStarted(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return this.until(
      () => this.startedFlag,
      'the VM did not start',
      'start() did not complete',
      timeoutMs,
      signal,
    );
  }

  /** Resolves on the readiness line; rejects (and ends the VM) on COWORK-FATAL, exit, timeout or abort. */
  waitReady(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return this.until(
      () => this.ready,
      'the guest did not boot',
      'no readiness line',
      timeoutMs,
      signal,
    ).then(() => {
      this._state = 'running';
    });
  }

  private until(
    done: () => boolean,
    what: string,
    missing: string,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = (err?: CoworkError) => {
        this.progress.off('change', check);
        signal?.removeEventListener('abort', onAbort);
        clearTimeout(timer);
        if (!err) return resolve();
        void this.stop({ graceful: false });
        void this.exited.then(() => reject(err));
      };
      const check = () => {
        if (this.startFailure) return settle(new CoworkError('unavailable', this.startFailure));
        if (this._state === 'stopped' || this._state === 'crashed')
          return settle(new CoworkError('unavailable', `${what}: the VZ runner exited`));
        if (done()) settle();
      };
      const onAbort = () => settle(new CoworkError('cancelled', `${what}: cancelled`));
      timer = setTimeout(
        () => settle(new CoworkError('timeout', `${what}: ${missing} within ${timeoutMs / 1000} s`)),
        timeoutMs,
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      this.progress.on('change', check);
      check();
    });
  }

  async connect(guestPort: number): Promise<Duplex> {
    if (this._state !== 'running') {
      throw new CoworkError(
        'invalidState',
        `the VM is ${this._state}; start it before connecting to port ${guestPort}`,
      );
    }
    if (!this.guestPorts.includes(guestPort)) {
      throw new CoworkError('invalidArgument', `guest port ${guestPort} is not in spec.guestPorts`);
    }
    const id = this.nextId++;
    return new Promise<Duplex>((resolve, reject) => {
      // The runner answers within connectTimeoutMs (+ its own slack); this covers a hung runner.
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(this.connectError('no answer from the VZ runner', true));
      }, this.connectTimeoutMs + 3_000);
      this.waiting.set(id, {
        resolve,
        reject: (e) =>
          reject(
            CoworkError.is(e, 'unavailable')
              ? new CoworkError('unavailable', `guest port ${guestPort}: ${e.message}`, e)
              : e,
          ),
        timer,
      });
      this.send({ type: 'connect', id, port: guestPort, timeoutMs: this.connectTimeoutMs });
    });
  }

  /**
   * graceful (default): the runner asks the guest (requestStop) and forces bridge.stop when the
   * guest has not powered off within timeoutMs; not graceful: forced at once. SIGKILL of the
   * runner only when even that did not end it, KILL_MARGIN_MS later. Resolves when it is gone.
   */
  async stop(opts: { graceful?: boolean; timeoutMs?: number } = {}): Promise<VmExitInfo> {
    if (this._state === 'stopped' || this._state === 'crashed') return this.exited;
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.exited;
    if (this.stopRequested) return this.exited;
    this.stopRequested = true;
    this._state = 'stopping';
    const graceMs = opts.graceful === false ? 0 : (opts.timeoutMs ?? DEFAULT_STOP_TIMEOUT_MS);
    if (this.child.connected) this.send({ type: 'stop', graceful: opts.graceful !== false, graceMs });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs + KILL_MARGIN_MS);
    const info = await this.exited;
    clearTimeout(timer);
    return info;
  }
}
