import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { attachTerminalPrompt, MemoryApprovalBroker, reconcileAfterRestart } from '../approvals/index.js';
import { loadConfig } from '../config/index.js';
import { createPolicyEngine } from '../policy/index.js';
import { LocalControlServer } from '../control/local-server.js';
import { CoworkError } from '../errors.js';
import { hostPaths, sandboxStateDir } from '../paths.js';
import { Timeline } from '../timeline/index.js';
import type { Accel, ShareMode, VmExitInfo } from '../vm/driver.js';
import { createDriver } from '../vm/index.js';
import { Controller } from './controller.js';
import { localHandlers } from './handlers.js';
import { SandboxLock } from './lock.js';
import { Sandbox } from './sandbox.js';
import { resolveWorkspace } from './workspace.js';

export interface StartOptions {
  workspace?: string;
  configFile?: string;
  cpus?: number;
  memoryMiB?: number;
  image?: string;
  accel?: Accel;
  share?: ShareMode | 'auto';
  env?: NodeJS.ProcessEnv;
  onProgress?: (line: string) => void;
  onWarning?: (line: string) => void;
  /** Foreground terminal frontend for approvals (the `start` terminal, when interactive). */
  terminal?: { input: NodeJS.ReadableStream; output: NodeJS.WritableStream };
}

export interface RunningController {
  controller: Controller;
  sandbox: Sandbox;
  workspace: string;
  stateDir: string;
  socketPath: string;
  /** Resolves when the controller has shut down (stop request, signal or VM crash). */
  done: Promise<{ reason: 'stopped' | 'crashed'; exit?: VmExitInfo }>;
  shutdown(reason?: string): Promise<void>;
}

export function controlSocketPath(stateDir: string): string {
  return join(stateDir, 'control.sock');
}

/** Locations of a workspace's sandbox, for commands that talk to a running controller. */
export function locateSandbox(workspace?: string, env: NodeJS.ProcessEnv = process.env) {
  const ws = resolveWorkspace(workspace);
  const stateDir = sandboxStateDir(hostPaths(env), ws);
  return { workspace: ws, stateDir, socketPath: controlSocketPath(stateDir) };
}

function pick<T>(flag: T | undefined, envValue: string | undefined, configValue: T, parseEnv?: (v: string) => T): T {
  if (flag !== undefined) return flag;
  if (envValue !== undefined && envValue !== '' && parseEnv) return parseEnv(envValue);
  return configValue;
}

/**
 * The body of `cowork-vm start`: takes the workspace lock, boots the guest, opens the timeline,
 * builds the one enforcement path (Controller) and serves it on the local control socket. The
 * controller alone owns the VM and the SSH session.
 */
export async function startController(opts: StartOptions): Promise<RunningController> {
  const env = opts.env ?? process.env;
  const progress = opts.onProgress ?? (() => {});
  const workspace = resolveWorkspace(opts.workspace);
  const { config, warnings } = loadConfig({ configFile: opts.configFile, workspace, env });
  for (const w of warnings) opts.onWarning?.(w);

  const paths = hostPaths(env);
  const stateDir = sandboxStateDir(paths, workspace);
  const lock = SandboxLock.acquire(join(stateDir, 'lock'), workspace);
  const timeline = Timeline.open(join(stateDir, 'timeline.db'));
  const cleanup: (() => unknown)[] = [() => timeline.close(), () => lock.release()];
  const runCleanup = async () => {
    // Newest first; each step runs once even if cleanup is requested twice.
    for (let fn = cleanup.pop(); fn; fn = cleanup.pop()) {
      try {
        await fn();
      } catch {
        /* keep cleaning */
      }
    }
  };

  try {
    reconcileAfterRestart(timeline);
    timeline.abandonRunningTasks('the controller restarted');
    // Built before the VM boots: an invalid rule or regex fails the start, never a later command.
    const policy = createPolicyEngine(config);
    const accel = pick<Accel>(opts.accel, env.COWORK_VM_ACCEL, config.vm.accel as Accel, (v) => parseAccel(v));
    const driver = await createDriver(process.platform, { paths });
    const probe = await driver.probe({ accel });
    if (!probe.ok) {
      throw new CoworkError('unavailable', `${driver.name} cannot run here: ${probe.reason}${probe.fix ? ` — ${probe.fix}` : ''}`);
    }
    const cpus = opts.cpus ?? config.vm.cpus;
    const memoryMiB = opts.memoryMiB ?? config.vm.memoryMiB;
    const image = opts.image ?? config.vm.image;
    const sandbox = await Sandbox.start({
      workspace,
      stateDir,
      paths,
      driver,
      image,
      cpus,
      memoryMiB,
      accel,
      share: opts.share ?? (config.vm.share as ShareMode | 'auto'),
      onProgress: progress,
    });
    cleanup.push(() => sandbox.stop());
    timeline.record(null, {
      type: 'vm.started',
      driver: driver.name,
      cpus,
      memoryMiB,
      accel: sandbox.info.accel,
      share: sandbox.info.share,
      image,
      bootMs: sandbox.info.bootMs,
    });

    const approvals = new MemoryApprovalBroker({ timeline });
    let requestStop: (reason: string) => void = () => {};
    const controller = new Controller({
      workspace,
      stateDir,
      sandbox,
      policy,
      approvals,
      timeline,
      approvalTimeoutMs: config.guardrails.approvalTimeoutSeconds * 1000,
      vmSpec: { driver: driver.name, cpus, memoryMiB },
      onStopRequested: () => requestStop('stop requested'),
    });
    if (opts.terminal) {
      const rl = createInterface({ input: opts.terminal.input, output: opts.terminal.output });
      const detach = attachTerminalPrompt({
        broker: approvals,
        rl,
        output: opts.terminal.output,
        answer: (id, answer) => controller.approvalsAnswer(id, answer, { id: 'terminal', context: 'local' }),
      });
      cleanup.push(() => (detach(), rl.close()));
    }

    const socketPath = controlSocketPath(stateDir);
    const server = new LocalControlServer(socketPath, localHandlers(controller));
    await server.listen();
    cleanup.push(() => server.close());

    let finished = false;
    let resolveDone: (v: { reason: 'stopped' | 'crashed'; exit?: VmExitInfo }) => void = () => {};
    const done = new Promise<{ reason: 'stopped' | 'crashed'; exit?: VmExitInfo }>((r) => (resolveDone = r));

    const shutdown = async (reason = 'stopped'): Promise<void> => {
      if (finished) return;
      finished = true;
      controller.markState('stopping');
      await server.close();
      const exit = await sandbox.stop().catch(() => undefined);
      timeline.record(null, { type: 'vm.stopped', reason });
      await runCleanup();
      resolveDone({ reason: 'stopped', exit });
    };
    // Deferred so the reply to a `stop` request leaves before the socket closes.
    requestStop = (reason) => void setTimeout(() => void shutdown(reason), 50);

    sandbox.on('exit', (exit: VmExitInfo) => {
      if (finished || exit.state !== 'crashed') return;
      finished = true;
      controller.markState('crashed');
      timeline.record(null, {
        type: 'vm.crashed',
        reason: exit.signal ? `QEMU killed by ${exit.signal}` : `QEMU exited with code ${exit.code}`,
        exitCode: exit.code,
      });
      // Let in-flight requests deliver their "VM stopped" errors before the socket goes away.
      setTimeout(() => {
        void runCleanup().then(() => resolveDone({ reason: 'crashed', exit }));
      }, 2500);
    });

    return { controller, sandbox, workspace, stateDir, socketPath, done, shutdown };
  } catch (err) {
    await runCleanup();
    throw err;
  }
}

export function parseAccel(v: string): Accel {
  if (v === 'auto' || v === 'kvm' || v === 'hvf' || v === 'tcg') return v;
  throw new CoworkError('invalidArgument', `accelerator "${v}" is not one of auto, kvm, hvf, tcg (COWORK_VM_ACCEL / --accel)`);
}
