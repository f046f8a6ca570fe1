import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { attachTerminalPrompt, MemoryApprovalBroker, reconcileAfterRestart } from '../approvals/index.js';
import { RemoteAccess } from '../channels/index.js';
import { loadConfig } from '../config/index.js';
import { LocalControlServer } from '../control/local-server.js';
import { EgressProxy, egressRelayCommand } from '../egress/index.js';
import { CoworkError } from '../errors.js';
import { hostPaths, sandboxStateDir } from '../paths.js';
import { createPolicyEngine } from '../policy/index.js';
import { KeychainSecretStore } from '../secrets/index.js';
import { Timeline } from '../timeline/index.js';
import type { Accel, ShareMode, VmExitInfo } from '../vm/driver.js';
import { createDriver, parseAccel } from '../vm/index.js';
import { protectedPathsFor, WorkspaceGuard } from '../workspace/index.js';
import { Controller } from './controller.js';
import { localHandlers } from './handlers.js';
import { SandboxLock } from './lock.js';
import { Sandbox } from './sandbox.js';
import { TaskScopes } from './task-scope.js';
import { createTaskRunner } from './tasks.js';
import { resolveWorkspace } from './workspace.js';

// Re-exported: the paths live in locate.ts so that CLI clients need not load this module.
export { controlSocketPath, locateSandbox } from './locate.js';

import { controlSocketPath } from './locate.js';

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
  /** `--listen HOST:PORT`: turn on the WebSocket control API (overrides [control] listen). */
  listen?: string;
  allowRemote?: boolean;
  /** Where remote-access notices go (e.g. the warning for a non-loopback listener). */
  onNotice?: (line: string) => void;
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

/** Where the guest reaches the egress proxy (QEMU user-net guestfwd; never leaves the host). */
export const EGRESS_GUEST_ADDRESS = '10.0.2.100';
export const EGRESS_GUEST_PORT = 3128;

function pick<T>(
  flag: T | undefined,
  envValue: string | undefined,
  configValue: T,
  parseEnv?: (v: string) => T,
): T {
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
    // The workspace boundary: what the host executes or trusts is mounted read-only in the guest,
    // and whatever protected path appears later is quarantined (src/host/workspace/guard.ts).
    const guard = new WorkspaceGuard({
      workspace,
      stateDir,
      protect: protectedPathsFor(workspace, config.workspace),
      onChange: (c) => timeline.record(null, { type: 'workspace.protected_change', ...c }),
    });
    const protectPlan = await guard.planMounts();
    cleanup.push(() => guard.close());
    // Built before the VM boots: an invalid rule or regex fails the start, never a later command.
    // It knows the same protected paths as the guard (including what the repositories' configs name).
    const policy = createPolicyEngine(config, { protectedPaths: guard.protectedPaths });
    const accel = pick<Accel>(opts.accel, env.COWORK_VM_ACCEL, config.vm.accel as Accel, (v) =>
      parseAccel(v, 'COWORK_VM_ACCEL'),
    );
    const driver = await createDriver(process.platform, { paths });
    const probe = await driver.probe({ accel });
    if (!probe.ok) {
      throw new CoworkError(
        'unavailable',
        `${driver.name} cannot run here: ${probe.reason}${probe.fix ? ` — ${probe.fix}` : ''}`,
      );
    }
    // The guest's only route out: a proxy on the host's loopback, reached through QEMU's
    // guestfwd. With no [egress] rules it denies everything (with a 403 that says how to allow).
    const approvals = new MemoryApprovalBroker({ timeline });
    const egress = new EgressProxy({
      rules: {
        allow: config.egress.allow,
        deny: config.egress.deny,
        ask: config.egress.ask,
        allowAll: config.egress.allowAll,
      },
      broker: approvals,
      timeline,
      testResolve: config.egress.testResolve,
      env,
      context: 'agent',
      approvalTimeoutMs: config.guardrails.approvalTimeoutSeconds * 1000,
    });
    const { port: egressPort } = await egress.start();
    cleanup.push(() => egress.close());

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
      egress: {
        hostPort: egressPort,
        guestAddress: EGRESS_GUEST_ADDRESS,
        guestPort: EGRESS_GUEST_PORT,
        hostCommand: egressRelayCommand(egressPort),
      },
      onProgress: progress,
      protect: protectPlan,
    });
    cleanup.push(() => sandbox.stop());
    guard.watch();
    progress(
      `protected ${protectPlan.length} workspace paths (git metadata, ${config.workspace.protect.join(' ')})`,
    );
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

    let requestStop: (reason: string) => void = () => {};
    const proxyUrl = `http://${EGRESS_GUEST_ADDRESS}:${EGRESS_GUEST_PORT}`;
    const scopes = new TaskScopes({ attribution: egress.tasks, proxyUrl });
    const tasks = createTaskRunner({ config, sandbox, workspace, timeline, proxyUrl, env, scopes });
    cleanup.push(() => tasks.dispose());
    const controller = new Controller({
      workspace,
      stateDir,
      sandbox,
      policy,
      approvals,
      timeline,
      approvalTimeoutMs: config.guardrails.approvalTimeoutSeconds * 1000,
      vmSpec: { driver: driver.name, cpus, memoryMiB },
      egressPort,
      tasks,
      scopes,
      onStopRequested: () => requestStop('stop requested'),
      guard,
    });
    tasks.attach(controller);
    if (opts.terminal) {
      const rl = createInterface({ input: opts.terminal.input, output: opts.terminal.output });
      // On a tty readline reads in raw mode, where Ctrl-C is a byte that readline turns into its
      // own 'SIGINT' event (and, with no listener, swallows by closing itself — so the first
      // Ctrl-C of `cowork-vm start` did nothing). Raise it as the real signal it was meant as.
      rl.on('SIGINT', () => process.kill(process.pid, 'SIGINT'));
      const detach = attachTerminalPrompt({
        broker: approvals,
        rl,
        output: opts.terminal.output,
        answer: (id, answer) => controller.approvalsAnswer(id, answer, { id: 'terminal', context: 'local' }),
      });
      cleanup.push(() => {
        detach();
        rl.close();
      });
    }

    const socketPath = controlSocketPath(stateDir);
    const server = new LocalControlServer(socketPath, localHandlers(controller));
    await server.listen();
    cleanup.push(() => server.close());

    // Remote control (WebSocket API, Telegram): off unless configured or --listen is given.
    const listen = opts.listen ?? config.control.listen;
    if (listen || config.channels.telegram.enabled) {
      const remote = await RemoteAccess.start({
        config,
        api: controller,
        paths,
        recorder: timeline,
        secrets: new KeychainSecretStore(),
        listen,
        allowRemote: opts.allowRemote,
        logger: { warn: (m: string) => opts.onNotice?.(`warning: ${m}`) },
      });
      cleanup.push(() => remote.close());
      controller.setControlListen(remote.url);
      if (remote.url) progress(`control API listening on ${remote.url}`);
    }

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
      await guard.check().catch(() => []); // a last look, once the guest can write nothing more
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
