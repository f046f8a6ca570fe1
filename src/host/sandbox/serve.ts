import { join } from 'node:path';
import { MemoryApprovalBroker, reconcileAfterRestart } from '../approvals/index.js';
import { CheckpointStore, snapshotOptions, TaskCheckpoints } from '../checkpoints/index.js';
import type { ResolvedConfig } from '../config/index.js';
import { loadConfig } from '../config/index.js';
import { EgressProxy, hostRoots, resolveCredentials } from '../egress/index.js';
import { CoworkError } from '../errors.js';
import { parseForwardSpec } from '../jobs/forward-spec.js';
import { ToolSessions } from '../mcp/sessions.js';
import type { HostPaths } from '../paths.js';
import { hostPaths, sandboxStateDir } from '../paths.js';
import type { PolicyEngine } from '../policy/index.js';
import { createPolicyEngine } from '../policy/index.js';
import { Timeline } from '../timeline/index.js';
import type { Accel, ShareMode, VmDriver, VmExitInfo } from '../vm/driver.js';
import { createDriver, parseAccel } from '../vm/index.js';
import { type MountLine, protectedPathsFor, WorkspaceGuard } from '../workspace/index.js';
import { Controller } from './controller.js';
import { InFlightRequests } from './drain.js';
import { attachNotifications, attachTerminal, serveDashboard, serveLocal, serveRemote } from './frontends.js';
import { guestTrust } from './guest-trust.js';
import { CleanupStack, type StopHook, superviseLifecycle } from './lifecycle.js';
import { SandboxLock } from './lock.js';
import { recordWorkspaceStart } from './recent.js';
import { Sandbox } from './sandbox.js';
import { TaskScopes } from './task-scope.js';
import { createTaskRunner, taskToolSetup } from './tasks.js';
import { resolveWorkspace } from './workspace.js';

// Re-exported: the paths live in locate.ts so that CLI clients need not load this module.
export { controlSocketPath, locateSandbox } from './locate.js';

export interface StartOptions {
  workspace?: string;
  configFile?: string;
  cpus?: number;
  memoryMiB?: number;
  image?: string;
  accel?: Accel;
  share?: ShareMode | 'auto';
  /** `--warm`/`--no-warm`: overrides `[vm] warm` (start from the image's warm snapshot when there is one). */
  warm?: boolean;
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
  /** The workspace checkpoints around agent tasks and agent commands; absent with `[checkpoints] enabled = false`. */
  checkpoints?: TaskCheckpoints;
  workspace: string;
  stateDir: string;
  socketPath: string;
  /** Resolves when the controller has shut down (stop request, signal or VM crash). */
  done: Promise<{ reason: 'stopped' | 'crashed'; exit?: VmExitInfo }>;
  shutdown(reason?: string): Promise<void>;
}

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

/** What every step after the host checks needs. */
interface StartContext {
  opts: StartOptions;
  env: NodeJS.ProcessEnv;
  progress: (line: string) => void;
  workspace: string;
  config: ResolvedConfig;
  paths: HostPaths;
  stateDir: string;
  timeline: Timeline;
  cleanup: CleanupStack;
}

/**
 * The body of `cowork-vm start`: takes the workspace lock, boots the guest, opens the timeline,
 * builds the one enforcement path (Controller) and serves it on the local control socket. The
 * controller alone owns the VM and the SSH session. Each step registers its own teardown; a
 * failing step undoes everything before it.
 */
export async function startController(opts: StartOptions): Promise<RunningController> {
  const ctx = claimWorkspace(opts);
  try {
    reconcileAfterRestart(ctx.timeline);
    ctx.timeline.abandonRunningTasks('the controller restarted');
    const { guard, protectPlan } = await guardWorkspace(ctx);
    // Built before the VM boots: an invalid rule or regex fails the start, never a later command.
    // It knows the same protected paths as the guard (including what the repositories' configs name).
    const policy = createPolicyEngine(ctx.config, { protectedPaths: guard.protectedPaths });
    const checkpoints = await openCheckpoints(ctx);
    const { driver, accel } = await readyDriver(ctx);
    const { approvals, egress, egressPort } = await startEgress(ctx);
    const trust = guestTrust({ guest: ctx.config.guest, sandboxCaPem: egress.caCertPem, env: ctx.env });
    const sandbox = await bootSandbox(ctx, {
      driver,
      accel,
      egressPort,
      guard,
      protectPlan,
      trust: trust.cas.map((c) => c.pem),
    });
    const inFlight = { local: new InFlightRequests(), remote: new InFlightRequests() };
    const stop: StopHook = { request: () => {} };
    const controller = buildController(ctx, {
      driver,
      sandbox,
      policy,
      approvals,
      egress,
      egressPort,
      guard,
      stop,
      checkpoints,
    });
    ctx.cleanup.push(() => controller.closeJobsAndForwards('stop'));
    await openConfiguredForwards(ctx, controller, opts.onWarning);
    if (opts.terminal) attachTerminal(opts.terminal, approvals, controller, ctx.cleanup);
    const onNotice = opts.onNotice ?? opts.onWarning ?? (() => {});
    await attachNotifications({ ...ctx, onNotice }, approvals, controller);
    const { server, socketPath } = await serveLocal(ctx.stateDir, controller, inFlight.local, ctx.cleanup);
    const { listen, allowRemote } = opts;
    const remote = await serveRemote(
      { ...ctx, listen, allowRemote, onNotice: opts.onNotice },
      controller,
      inFlight.remote,
    );
    await serveDashboard(ctx, controller, inFlight.remote, remote);
    const { done, shutdown } = superviseLifecycle({
      controller,
      sandbox,
      guard,
      timeline: ctx.timeline,
      inFlight,
      server,
      stop,
      cleanup: ctx.cleanup,
    });
    return {
      controller,
      sandbox,
      checkpoints,
      workspace: ctx.workspace,
      stateDir: ctx.stateDir,
      socketPath,
      done,
      shutdown,
    };
  } catch (err) {
    await ctx.cleanup.run();
    throw err;
  }
}

/** Config, the workspace lock and the timeline: nothing else may run for this workspace now. */
function claimWorkspace(opts: StartOptions): StartContext {
  const env = opts.env ?? process.env;
  const workspace = resolveWorkspace(opts.workspace);
  const { config, warnings } = loadConfig({ configFile: opts.configFile, workspace, env });
  for (const w of warnings) opts.onWarning?.(w);
  const paths = hostPaths(env);
  const stateDir = sandboxStateDir(paths, workspace);
  const lock = SandboxLock.acquire(join(stateDir, 'lock'), workspace);
  recordWorkspaceStart(stateDir, workspace);
  const cleanup = new CleanupStack();
  cleanup.push(() => lock.release());
  let timeline: Timeline;
  try {
    timeline = Timeline.open(join(stateDir, 'timeline.db'));
  } catch (err) {
    lock.release();
    throw err;
  }
  cleanup.push(() => timeline.close());
  const progress = opts.onProgress ?? (() => {});
  return { opts, env, progress, workspace, config, paths, stateDir, timeline, cleanup };
}

/**
 * The workspace boundary: what the host executes or trusts is mounted read-only in the guest,
 * and whatever protected path appears later is quarantined (src/host/workspace/guard.ts).
 */
async function guardWorkspace(
  ctx: StartContext,
): Promise<{ guard: WorkspaceGuard; protectPlan: MountLine[] }> {
  const guard = new WorkspaceGuard({
    workspace: ctx.workspace,
    stateDir: ctx.stateDir,
    protect: protectedPathsFor(ctx.workspace, ctx.config.workspace),
    onChange: (c) => ctx.timeline.record(null, { type: 'workspace.protected_change', ...c }),
  });
  const protectPlan = await guard.planMounts();
  ctx.cleanup.push(() => guard.close());
  return { guard, protectPlan };
}

/** This host's driver, probed: a driver that cannot run here fails the start with its fix. */
async function readyDriver(ctx: StartContext): Promise<{ driver: VmDriver; accel: Accel }> {
  const accel = pick<Accel>(ctx.opts.accel, ctx.env.COWORK_VM_ACCEL, ctx.config.vm.accel as Accel, (v) =>
    parseAccel(v, 'COWORK_VM_ACCEL'),
  );
  const driver = await createDriver(process.platform, { paths: ctx.paths });
  const probe = await driver.probe({ accel });
  if (!probe.ok) {
    throw new CoworkError(
      'unavailable',
      `${driver.name} cannot run here: ${probe.reason}${probe.fix ? ` — ${probe.fix}` : ''}`,
    );
  }
  return { driver, accel };
}

/**
 * The guest's only route out: a proxy on the host's loopback, which the driver makes reachable
 * from the guest. With no [egress] rules it denies everything (with a 403 that says how to allow).
 */
async function startEgress(ctx: StartContext) {
  const { config, timeline } = ctx;
  const approvals = new MemoryApprovalBroker({ timeline });
  const credentials = await egressCredentials(ctx);
  const egress = new EgressProxy({
    credentials,
    upstreamRoots: [
      ...hostRoots(),
      ...guestTrust({
        guest: { trustHostCAs: false, extraCAs: config.guest.extraCAs },
        env: ctx.env,
      }).cas.map((c) => c.pem),
    ],
    rules: {
      allow: config.egress.allow,
      deny: config.egress.deny,
      ask: config.egress.ask,
      allowAll: config.egress.allowAll,
    },
    broker: approvals,
    timeline,
    testResolve: config.egress.testResolve,
    env: ctx.env,
    context: 'agent',
    approvalTimeoutMs: config.guardrails.approvalTimeoutSeconds * 1000,
    maxConnections: config.egress.maxConnections,
    connectTimeoutMs: config.egress.connectTimeoutSeconds * 1000,
    idleTimeoutMs: config.egress.idleTimeoutSeconds * 1000,
  });
  const { port: egressPort } = await egress.start();
  ctx.cleanup.push(() => egress.close());
  return { approvals, egress, egressPort };
}

/**
 * `[[egress.credentials]]` with their secrets from the OS keychain. Fails closed: no keychain or
 * a missing entry stops the start with a message naming the rule and the fix.
 */
async function egressCredentials(ctx: StartContext) {
  const rules = ctx.config.egress.credentials;
  if (rules.length === 0) return [];
  const { KeychainSecretStore } = await import('../secrets/index.js');
  const resolved = await resolveCredentials(rules, new KeychainSecretStore());
  for (const r of resolved)
    ctx.timeline.record(null, {
      type: 'secret.used',
      name: r.secretName,
      purpose: `egress credential for ${r.host}`,
    });
  ctx.progress(
    `credential rules for ${resolved.map((r) => r.host).join(', ')} (TLS terminated for those hosts only)`,
  );
  return resolved;
}

async function bootSandbox(
  ctx: StartContext,
  deps: {
    driver: VmDriver;
    accel: Accel;
    egressPort: number;
    guard: WorkspaceGuard;
    protectPlan: MountLine[];
    trust: string[];
  },
): Promise<Sandbox> {
  const { opts, config, timeline } = ctx;
  const { guard, protectPlan } = deps;
  const vm = vmSettings(ctx);
  const sandbox = await Sandbox.start({
    workspace: ctx.workspace,
    stateDir: ctx.stateDir,
    paths: ctx.paths,
    driver: deps.driver,
    image: vm.image,
    cpus: vm.cpus,
    memoryMiB: vm.memoryMiB,
    accel: deps.accel,
    share: opts.share ?? (config.vm.share as ShareMode | 'auto'),
    egress: { hostPort: deps.egressPort },
    warm: opts.warm ?? config.vm.warm,
    onProgress: ctx.progress,
    protect: protectPlan,
    cache: config.cache,
    trust: deps.trust,
  });
  ctx.cleanup.push(() => sandbox.stop());
  guard.watch();
  ctx.progress(
    `protected ${protectPlan.length} workspace paths (git metadata, ${config.workspace.protect.join(' ')})`,
  );
  timeline.record(null, {
    type: 'vm.started',
    driver: deps.driver.name,
    ...vm,
    accel: sandbox.info.accel,
    share: sandbox.info.share,
    bootMs: sandbox.info.bootMs,
  });
  return sandbox;
}

/**
 * `[forward] ports`, opened as the user at this machine would (the user config only; a workspace
 * config cannot name one). A port in use does not fail the start: it is reported and recorded.
 */
async function openConfiguredForwards(
  ctx: StartContext,
  controller: Controller,
  onWarning: ((line: string) => void) | undefined,
): Promise<void> {
  for (const entry of ctx.config.forward.ports) {
    const spec = parseForwardSpec(entry, 'forward.ports');
    try {
      const f = await controller.forwardOpen(spec, { id: 'config', context: 'local' });
      ctx.progress(`forwarding guest port ${f.guestPort} to ${f.url}`);
    } catch (err) {
      const e = CoworkError.from(err);
      onWarning?.(`[forward] ports ${JSON.stringify(entry)}: ${e.message}`);
      ctx.timeline.record(null, { type: 'error', code: e.code, message: e.message, where: 'forward.ports' });
    }
  }
}

function vmSettings(ctx: StartContext): { cpus: number; memoryMiB: number; image: string } {
  return {
    cpus: ctx.opts.cpus ?? ctx.config.vm.cpus,
    memoryMiB: ctx.opts.memoryMiB ?? ctx.config.vm.memoryMiB,
    image: ctx.opts.image ?? ctx.config.vm.image,
  };
}

/** The one enforcement path, with the agent task runner attached. */
/** The checkpoint store in the state dir, before the VM boots (a broken store fails the start). */
async function openCheckpoints(ctx: StartContext): Promise<TaskCheckpoints | undefined> {
  if (!ctx.config.checkpoints.enabled) return undefined;
  const store = await CheckpointStore.open(
    ctx.stateDir,
    ctx.workspace,
    snapshotOptions(ctx.config.checkpoints),
  );
  return new TaskCheckpoints(store, ctx.timeline);
}

function buildController(
  ctx: StartContext,
  deps: {
    driver: VmDriver;
    sandbox: Sandbox;
    policy: PolicyEngine;
    approvals: MemoryApprovalBroker;
    egress: EgressProxy;
    egressPort: number;
    guard: WorkspaceGuard;
    stop: StopHook;
    checkpoints: TaskCheckpoints | undefined;
  },
): Controller {
  const { config, timeline } = ctx;
  const proxyUrl = deps.sandbox.info.guestProxyUrl;
  if (!proxyUrl)
    throw new CoworkError('internal', 'the sandbox booted without the egress proxy it was given');
  const scopes = new TaskScopes({ attribution: deps.egress.tasks, proxyUrl });
  const taskDeps = {
    config,
    sandbox: deps.sandbox,
    workspace: ctx.workspace,
    timeline,
    proxyUrl,
    env: ctx.env,
    scopes,
  };
  const setup = taskToolSetup(taskDeps);
  const tasks = createTaskRunner({ ...taskDeps, checkpoints: deps.checkpoints }, setup);
  ctx.cleanup.push(() => tasks.dispose());
  // Outside agents (cowork-vm mcp) get the same tools, scopes and browser as agent tasks.
  const toolSessions = new ToolSessions({
    timeline,
    tools: setup.tools,
    maxFileSizeMB: config.guardrails.maxFileSizeMB,
    limits: config.mcp,
    extendContext: setup.extendContext,
    onSessionEnd: setup.onTaskEnd,
    checkpoints: deps.checkpoints,
  });
  ctx.cleanup.push(() => toolSessions.dispose());
  const { cpus, memoryMiB } = vmSettings(ctx);
  const controller = new Controller({
    workspace: ctx.workspace,
    stateDir: ctx.stateDir,
    sandbox: deps.sandbox,
    policy: deps.policy,
    approvals: deps.approvals,
    timeline,
    approvalTimeoutMs: config.guardrails.approvalTimeoutSeconds * 1000,
    vmSpec: { driver: deps.driver.name, cpus, memoryMiB },
    egressPort: deps.egressPort,
    tasks,
    scopes,
    onStopRequested: () => deps.stop.request('stop requested'),
    guard: deps.guard,
    toolSessions,
    checkpoints: deps.checkpoints,
  });
  tasks.attach(controller);
  toolSessions.attach(controller);
  return controller;
}
