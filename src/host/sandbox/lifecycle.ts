import type { LocalControlServer } from '../control/local-server.js';
import type { Timeline } from '../timeline/index.js';
import type { VmExitInfo } from '../vm/driver.js';
import type { WorkspaceGuard } from '../workspace/index.js';
import type { Controller } from './controller.js';
import type { InFlightRequests } from './drain.js';
import type { Sandbox } from './sandbox.js';

/** How long shutdown waits for control requests in flight to be answered before it closes anyway. */
const DRAIN_DEADLINE_MS = 5_000;

/** Teardown steps, run newest first and each once, however often cleanup is requested. */
export class CleanupStack {
  private readonly steps: (() => unknown)[] = [];

  push(step: () => unknown): void {
    this.steps.push(step);
  }

  async run(): Promise<void> {
    for (let step = this.steps.pop(); step; step = this.steps.pop()) {
      try {
        await step();
      } catch {
        /* keep cleaning */
      }
    }
  }
}

export type DoneInfo = { reason: 'stopped' | 'crashed'; exit?: VmExitInfo };

/** A `stop` request reaches the lifecycle through this, wired once the lifecycle exists. */
export interface StopHook {
  request(reason: string): void;
}

/**
 * How the controller ends: a stop (request, signal) cancels the requests in flight, waits for
 * their answers, then powers the guest off; a crash lets the requests in flight report that the
 * VM stopped, then tears down. Either way `done` resolves once, after everything is closed.
 */
export function superviseLifecycle(deps: {
  controller: Controller;
  sandbox: Sandbox;
  guard: WorkspaceGuard;
  timeline: Timeline;
  /**
   * Requests in flight on the local socket (cancellable) and through the remote API. A stop
   * cancels and drains the local ones; the remote ones get their answer when the guest is gone,
   * before remote access closes (as before). A crash drains both.
   */
  inFlight: { local: InFlightRequests; remote: InFlightRequests };
  /** The local control server: closed once its requests are answered, before the guest powers off. */
  server: LocalControlServer;
  stop: StopHook;
  cleanup: CleanupStack;
}): { done: Promise<DoneInfo>; shutdown: (reason?: string) => Promise<void> } {
  const { controller, sandbox, guard, timeline, inFlight, server, stop, cleanup } = deps;
  let finished = false;
  let resolveDone: (v: DoneInfo) => void = () => {};
  const done = new Promise<DoneInfo>((r) => (resolveDone = r));

  const shutdown = async (reason = 'stopped'): Promise<void> => {
    if (finished) return;
    finished = true;
    controller.markState('stopping');
    inFlight.local.abortAll();
    // Includes a local `stop` request that may have started this: its answer leaves first.
    await inFlight.local.drain(DRAIN_DEADLINE_MS);
    await server.close();
    await controller.closeJobsAndForwards('stop').catch(() => undefined); // jobs die with the sandbox
    const exit = await sandbox.stop().catch(() => undefined);
    timeline.record(null, { type: 'vm.stopped', reason });
    await guard.check().catch(() => []); // a last look, once the guest can write nothing more
    await cleanup.run();
    resolveDone({ reason: 'stopped', exit });
  };
  stop.request = (reason) => void shutdown(reason);

  sandbox.on('exit', (exit: VmExitInfo) => {
    if (finished || exit.state !== 'crashed') return;
    finished = true;
    controller.markState('crashed');
    timeline.record(null, { type: 'vm.crashed', reason: exit.reason, exitCode: exit.code });
    void (async () => {
      // Requests in flight deliver their "VM stopped" errors before the sockets go away; what
      // is still waiting at the deadline (e.g. for an approval) is cancelled.
      const [local, remote] = [inFlight.local, inFlight.remote];
      const [localDone] = await Promise.all([
        local.drain(DRAIN_DEADLINE_MS),
        remote.drain(DRAIN_DEADLINE_MS),
      ]);
      if (!localDone) {
        local.abortAll();
        await local.drain(DRAIN_DEADLINE_MS);
      }
      await cleanup.run();
      resolveDone({ reason: 'crashed', exit });
    })();
  });
  return { done, shutdown };
}
