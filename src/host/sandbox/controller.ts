import { join } from 'node:path';
import type {
  ControllerApi,
  DashboardLogin,
  ExecOutcome,
  ExecRequest,
  JobStartOutcome,
  JobStartRequest,
  Origin,
  PolicyCheck,
  StatusInfo,
  TaskStartRequest,
  TaskSummary,
  ToolCallOutcome,
  ToolCallRequest,
  ToolCallStreams,
  ToolClient,
  ToolInfo,
  ToolSessionInfo,
} from '../api/controller.js';
import type { Role } from '../api/roles.js';
import type { ApprovalBroker, PendingApproval, Verdict } from '../approvals/types.js';
import type { TaskCheckpoints } from '../checkpoints/index.js';
import { CoworkError } from '../errors.js';
import { type ForwardInfo, GuestJobs, type JobChunk, type JobInfo, PortForwards } from '../jobs/index.js';
import type { ToolSessions } from '../mcp/sessions.js';
import type { Decision, PolicyEngine, PolicyRequest } from '../policy/types.js';
import type { ExecResult } from '../ssh/types.js';
import type { Timeline } from '../timeline/index.js';
import { scopeGuestFiles } from '../tools/guest-files.js';
import type { ToolAuthorization, ToolPolicyRequest } from '../tools/types.js';
import { describeProtectedChange, type ProtectedChange, type WorkspaceGuard } from '../workspace/index.js';
import type { Sandbox } from './sandbox.js';
import { TaskScopes } from './task-scope.js';

/** The most of a patch `tasks.diff` answers with (the rest: `cowork-vm diff`). */
const PATCH_BYTES = 256 * 1024;

export interface ControllerDeps {
  workspace: string;
  stateDir: string;
  sandbox: Sandbox;
  policy: PolicyEngine;
  approvals: ApprovalBroker;
  timeline: Timeline;
  approvalTimeoutMs: number;
  vmSpec: { driver: string; cpus: number; memoryMiB: number };
  /** Optional agent-task runner; absent → tasks.start is unsupported. */
  tasks?: TaskRunner;
  egressPort?: number;
  controlListen?: string;
  onStopRequested?: () => void;
  /** Quarantines protected paths the guest created; checked after every command. */
  guard?: WorkspaceGuard;
  /** Running tasks' scopes (command approvals, egress grants, proxy credentials); default: its own. */
  scopes?: TaskScopes;
  /** Outside agents' tool sessions (`cowork-vm mcp`); absent → tools.* are unsupported. */
  toolSessions?: ToolSessions;
  /** Checkpoints around agent-context commands outside a task (a task's own are the runner's). */
  checkpoints?: Pick<TaskCheckpoints, 'before' | 'after' | 'patch'>;
}

export interface TaskRunner {
  start(req: TaskStartRequest, origin: Origin): Promise<{ id: string }>;
  cancel(id: string, origin: Origin): void;
  running(): number;
  /** Live events (streamed model text…) as they happen; the timeline is the durable record. */
  subscribe?(listener: (taskId: string, event: { type: string }) => void): () => void;
}

/** The dashboard as the controller sees it: its address and how a caller gets a login URL. */
export interface DashboardFrontend {
  readonly url: string;
  login(req: { role?: Role }, origin: Origin): DashboardLogin;
}

/**
 * The one enforcement point. Every command that reaches the guest — from the CLI, the agent,
 * the control API or a messaging channel — goes through `exec`: request → exactly one policy
 * decision → approval when asked → guest → timeline. Nothing here runs anything on the host.
 */
export class Controller implements ControllerApi {
  private state: StatusInfo['state'] = 'running';
  /** Per-task state lives in the task's scope and ends with the task, never here. */
  private readonly scopes: TaskScopes;
  private dashboard: DashboardFrontend | undefined;
  /** Background jobs and port forwards: both live on the sandbox's SSH session and end with it. */
  private readonly jobs: GuestJobs;
  private readonly forwards: PortForwards;

  constructor(private readonly deps: ControllerDeps) {
    this.scopes = deps.scopes ?? new TaskScopes();
    this.jobs = new GuestJobs({ onEnd: (job, result, error) => this.recordJobEnd(job, result, error) });
    this.forwards = new PortForwards((port) => deps.sandbox.session.forward(port));
  }

  setControlListen(url: string | undefined): void {
    this.deps.controlListen = url;
  }

  setDashboard(dashboard: DashboardFrontend | undefined): void {
    this.dashboard = dashboard;
  }

  markState(state: StatusInfo['state']): void {
    this.state = state;
  }

  async status(): Promise<StatusInfo> {
    const { sandbox, vmSpec } = this.deps;
    return {
      workspace: this.deps.workspace,
      state: this.state,
      pid: process.pid,
      vm: {
        driver: vmSpec.driver,
        pid: sandbox.info.vmPid,
        accel: sandbox.info.accel,
        share: sandbox.info.share,
        image: sandbox.info.image,
        imageHash: sandbox.info.imageHash,
        cpus: vmSpec.cpus,
        memoryMiB: vmSpec.memoryMiB,
        sshPort: sandbox.info.sshPort,
        bootMs: sandbox.info.bootMs,
        ...(sandbox.info.bootSteps ? { bootSteps: sandbox.info.bootSteps } : {}),
        startedAt: sandbox.info.startedAt,
      },
      egress: this.deps.egressPort ? { listening: true, port: this.deps.egressPort } : { listening: false },
      control: { listen: this.deps.controlListen },
      ...(this.dashboard ? { dashboard: { url: this.dashboard.url } } : {}),
      pendingApprovals: this.deps.approvals.list().length,
      tasks: { running: this.deps.tasks?.running() ?? 0 },
      jobs: { running: this.jobs.running() },
      forwards: this.forwards.list(),
      ...(sandbox.info.cache ? { cache: sandbox.info.cache } : {}),
    };
  }

  /**
   * One decision (policy + approval, recorded) for a non-shell tool call. When it allows, the
   * caller gets guest file access for exactly the request's paths with their access (and the
   * withheld entries of a scoped path left out): the only way a tool reaches guest files. The
   * guest session itself never leaves the controller and the sandbox.
   */
  async authorize(
    request: ToolPolicyRequest,
    origin: Origin,
    taskId: string | undefined,
    signal?: AbortSignal,
  ): Promise<ToolAuthorization> {
    const d = await this.decide(request, origin, taskId, signal);
    if (!d.allowed) return { allowed: false, decision: d.decision, reason: d.reason };
    const guest = scopeGuestFiles(this.deps.sandbox.session, {
      workspace: this.deps.workspace,
      paths: request.paths ?? [],
      withheld: d.decision.withheld ?? [],
      signal,
    });
    return { allowed: true, decision: d.decision, guest };
  }

  /** Decide (policy + approval) without running; exec and authorize share it. Records the decision. */
  private async decide(
    request: PolicyRequest,
    origin: Origin,
    taskId: string | undefined,
    signal?: AbortSignal,
  ): Promise<{ allowed: boolean; decision: Decision; reason?: string }> {
    const { timeline } = this.deps;
    const tid = taskId ?? null;
    const approved = this.scopes.get(taskId)?.commandApprovals;
    let decision: Decision;
    try {
      decision = this.deps.policy.evaluate(request, {
        context: origin.context,
        workspace: this.deps.workspace,
        taskId,
        approvedForTask: approved,
      });
    } catch (err) {
      // Fail closed: a policy that cannot decide denies.
      decision = {
        effect: 'deny',
        reasons: [`policy could not decide: ${(err as Error).message}`],
        layer: 'guardrails',
      };
    }
    timeline.record(tid, {
      type: 'policy.decision',
      tool: request.tool ?? 'shell',
      command: request.kind === 'shell' ? request.command : undefined,
      effect: decision.effect,
      reasons: decision.reasons,
      layer: decision.layer,
      rule: decision.rule,
      context: origin.context,
      origin: origin.id,
    });
    if (decision.effect === 'deny') {
      return { allowed: false, decision, reason: decision.reasons.join('; ') || 'denied by policy' };
    }
    if (decision.effect === 'allow') return { allowed: true, decision };

    const command = request.kind === 'shell' ? request.command : undefined;
    const verdict: Verdict & { id?: string } = await this.deps.approvals.request(
      {
        taskId,
        tool: request.tool ?? 'shell',
        command,
        input: request.kind === 'tool' ? request.input : undefined,
        cwd: request.kind === 'shell' ? request.cwd : undefined,
        risk: request.kind === 'tool' ? request.risk : 'destructive',
        context: origin.context,
        reasons: decision.reasons,
      },
      { timeoutMs: this.deps.approvalTimeoutMs, signal },
    );
    if (verdict.kind === 'deny') {
      const why =
        verdict.by === 'timeout'
          ? 'no answer to the approval request in time (denied by timeout)'
          : `denied by ${verdict.by}${verdict.message ? `: ${verdict.message}` : ''}`;
      return {
        allowed: false,
        decision: { ...decision, effect: 'deny', reasons: [...decision.reasons, why] },
        reason: why,
      };
    }
    // Kept only while the task runs: a task that has ended (or never ran) has no scope to keep it in.
    if (verdict.kind === 'approve-task' && command) this.scopes.get(taskId)?.commandApprovals.add(command);
    return {
      allowed: true,
      decision: { ...decision, effect: 'allow', reasons: [...decision.reasons, `approved by ${verdict.by}`] },
    };
  }

  async exec(
    req: ExecRequest,
    origin: Origin,
    opts: { signal?: AbortSignal; onStdout?: (c: Buffer) => void; onStderr?: (c: Buffer) => void } = {},
  ): Promise<ExecOutcome> {
    if (this.state !== 'running') {
      throw new CoworkError(
        'unavailable',
        `the sandbox is ${this.state} — start it again with \`cowork-vm start\``,
      );
    }
    const auth = await this.requestShell(req, origin, opts.signal);
    if (!auth.allowed) return { decision: auth.decision, deniedReason: auth.reason };

    // The agent's command outside a task is a unit of work of its own: recorded before it runs
    // (no checkpoint, no run), its change set after.
    const checkpoint =
      origin.context === 'agent' && !req.taskId ? await this.checkpointBefore(req.command) : undefined;
    try {
      const outcome = await this.run(req, auth.decision, opts);
      return checkpoint ? { ...outcome, checkpoint } : outcome;
    } finally {
      if (checkpoint) await this.deps.checkpoints?.after(checkpoint).catch(() => undefined);
    }
  }

  private async checkpointBefore(command: string): Promise<string | undefined> {
    if (!this.deps.checkpoints) return undefined;
    try {
      return (await this.deps.checkpoints.before({ kind: 'exec', label: command })).id;
    } catch (err) {
      throw new CoworkError(
        'unavailable',
        `the workspace checkpoint could not be taken, so the command did not run: ${CoworkError.from(err).message}`,
        err,
      );
    }
  }

  private async run(
    req: ExecRequest,
    decision: Decision,
    opts: { signal?: AbortSignal; onStdout?: (c: Buffer) => void; onStderr?: (c: Buffer) => void },
  ): Promise<ExecOutcome> {
    const { timeline, sandbox } = this.deps;
    const tid = req.taskId ?? null;
    timeline.record(tid, { type: 'exec.started', command: req.command, cwd: req.cwd ?? '/workspace' });
    const mark = this.deps.guard?.mark() ?? 0;
    let result: ExecResult;
    try {
      result = await sandbox.exec(req.command, {
        cwd: req.cwd,
        timeoutMs: req.timeoutMs,
        maxOutputBytes: req.maxOutputBytes,
        stdin: req.stdin,
        // The task's own proxy credentials, so its guest traffic is attributed to it.
        env: this.scopes.get(req.taskId)?.proxyEnv(),
        signal: opts.signal,
        onStdout: opts.onStdout,
        onStderr: opts.onStderr,
      });
    } catch (err) {
      timeline.record(tid, { type: 'exec.failed', command: req.command, error: (err as Error).message });
      throw err;
    }
    // A protected path the command created (a hook, a nested repository, an .envrc) is moved
    // out of the workspace before anyone on the host can run it, and the caller is told.
    const changes: ProtectedChange[] = (await this.deps.guard?.afterCommand(mark).catch(() => [])) ?? [];
    if (changes.length > 0) {
      const note = changes.map((c) => `${describeProtectedChange(c)}\n`).join('');
      opts.onStderr?.(Buffer.from(note));
      result = { ...result, stderr: result.stderr + note };
    }
    timeline.record(tid, execFinished(result));
    return { decision, result, protectedChanges: changes.length > 0 ? changes : undefined };
  }

  /** A shell command asked for (exec or a background job): recorded, then decided. */
  private async requestShell(
    req: { command: string; cwd?: string; taskId?: string },
    origin: Origin,
    signal?: AbortSignal,
  ) {
    this.deps.timeline.record(req.taskId ?? null, {
      type: 'command.requested',
      tool: 'shell',
      command: req.command,
      context: origin.context,
      origin: origin.id,
      cwd: req.cwd,
    });
    return this.decide({ kind: 'shell', command: req.command, cwd: req.cwd }, origin, req.taskId, signal);
  }

  /**
   * `exec --background`: the same request → one decision → approval path as `exec`, then the
   * command runs on in the guest as a job whose end is recorded when it comes (exec.finished
   * with its jobId). It holds one SSH channel and dies with the sandbox.
   */
  async jobsStart(
    req: JobStartRequest,
    origin: Origin,
    opts: { signal?: AbortSignal } = {},
  ): Promise<JobStartOutcome> {
    this.assertRunning();
    this.jobs.assertRoom();
    const { timeline, sandbox } = this.deps;
    const tid = req.taskId ?? null;
    const auth = await this.requestShell(req, origin, opts.signal);
    if (!auth.allowed) return { decision: auth.decision, deniedReason: auth.reason };
    const env = this.scopes.get(req.taskId)?.proxyEnv();
    const job = this.jobs.start(
      req.command,
      (run) =>
        sandbox.exec(req.command, {
          cwd: req.cwd,
          timeoutMs: req.timeoutMs,
          maxOutputBytes: JOB_EXCERPT_BYTES,
          streamPastCap: true,
          env,
          ...run,
        }),
      req.taskId,
    );
    timeline.record(tid, {
      type: 'exec.started',
      command: req.command,
      cwd: req.cwd ?? '/workspace',
      jobId: job.id,
    });
    return { decision: auth.decision, job };
  }

  jobsList(): JobInfo[] {
    return this.jobs.list();
  }

  jobsLogs(
    id: string,
    emit: (c: JobChunk) => void,
    opts: { follow?: boolean; signal?: AbortSignal } = {},
  ): Promise<JobInfo> {
    return this.jobs.logs(id, emit, opts);
  }

  async jobsKill(id: string, origin: Origin): Promise<JobInfo> {
    const before = this.jobs.get(id);
    if (before.state === 'running') {
      this.deps.timeline.record(before.taskId ?? null, { type: 'job.killed', jobId: id, by: origin.id });
    }
    return this.jobs.kill(id, origin.id);
  }

  /**
   * A guest port on the host's 127.0.0.1. Only the user at this machine (the `local` context)
   * may open one: a forward makes whatever the guest serves reachable by every local process,
   * so the agent, a remote device or a messaging channel must not be able to ask for it.
   */
  async forwardOpen(req: { guestPort: number; hostPort?: number }, origin: Origin): Promise<ForwardInfo> {
    this.assertRunning();
    if (origin.context !== 'local') {
      const reason = `a port forward can only be opened from the local context (this caller is '${origin.context}'); run \`cowork-vm forward ${req.guestPort}\` on the host`;
      this.deps.timeline.record(null, {
        type: 'forward.refused',
        guestPort: req.guestPort,
        origin: origin.id,
        context: origin.context,
        reason,
      });
      throw new CoworkError('denied', reason);
    }
    const f = await this.forwards.open(req.guestPort, req.hostPort ?? req.guestPort);
    this.deps.timeline.record(null, {
      type: 'forward.opened',
      guestPort: f.guestPort,
      hostPort: f.hostPort,
      origin: origin.id,
    });
    return f;
  }

  async forwardClose(hostPort: number, origin: Origin): Promise<ForwardInfo> {
    const f = await this.forwards.close(hostPort);
    this.deps.timeline.record(null, {
      type: 'forward.closed',
      guestPort: f.guestPort,
      hostPort: f.hostPort,
      by: origin.id,
    });
    return f;
  }

  /** At stop: kill every job and close every forward before the guest goes (each recorded). */
  async closeJobsAndForwards(reason: string): Promise<void> {
    const by: Origin = { id: reason, context: 'local' };
    for (const f of this.forwards.list()) await this.forwardClose(f.hostPort, by).catch(() => {});
    await this.forwards.closeAll();
    for (const j of this.jobs.list().filter((x) => x.state === 'running'))
      this.deps.timeline.record(j.taskId ?? null, { type: 'job.killed', jobId: j.id, by: reason });
    await this.jobs.close(reason);
  }

  private recordJobEnd(job: JobInfo, result?: ExecResult, error?: CoworkError): void {
    const tid = job.taskId ?? null;
    if (!result) {
      this.deps.timeline.record(tid, {
        type: 'exec.failed',
        command: job.command,
        error: job.reason ?? error?.message ?? 'unknown error',
        jobId: job.id,
      });
      return;
    }
    this.deps.timeline.record(tid, execFinished(result, job.id));
  }

  private assertRunning(): void {
    if (this.state !== 'running') {
      throw new CoworkError(
        'unavailable',
        `the sandbox is ${this.state} — start it again with \`cowork-vm start\``,
      );
    }
  }

  /**
   * What `exec` would decide for this command in this context, from the same engine, without
   * recording, asking or running anything. A task's "approved for this task" commands are not
   * consulted: the answer is the rules' own.
   */
  policyCheck(req: { command: string; cwd?: string }, origin: Origin): PolicyCheck {
    let d: Decision;
    try {
      d = this.deps.policy.evaluate(
        { kind: 'shell', command: req.command, cwd: req.cwd },
        { context: origin.context, workspace: this.deps.workspace },
      );
    } catch (err) {
      d = {
        effect: 'deny',
        reasons: [`policy could not decide: ${(err as Error).message}`],
        layer: 'guardrails',
      };
    }
    return {
      verdict: d.effect,
      reasons: d.reasons,
      layer: d.layer,
      ...(d.rule !== undefined ? { rule: d.rule } : {}),
      context: origin.context,
    };
  }

  dashboardLogin(req: { role?: Role }, origin: Origin): DashboardLogin {
    if (!this.dashboard) {
      throw new CoworkError(
        'unavailable',
        'the dashboard is off ([dashboard] enabled = false in the config); set it to true and restart the sandbox',
      );
    }
    return this.dashboard.login(req, origin);
  }

  approvalsList(): PendingApproval[] {
    return this.deps.approvals.list();
  }

  approvalsAnswer(id: string, verdict: Omit<Verdict, 'by'>, origin: Origin): void {
    this.deps.approvals.answer(id, { ...verdict, by: origin.id });
  }

  tasksList(opts: { limit?: number } = {}): TaskSummary[] {
    return this.deps.timeline.listTasks({ limit: opts.limit ?? 50 }).map(toSummary);
  }

  tasksGet(id: string): TaskSummary {
    const t = this.deps.timeline.getTask(id);
    if (!t) throw new CoworkError('notFound', `no task ${id} — list tasks with \`cowork-vm timeline\``);
    return toSummary(t);
  }

  async tasksDiff(checkpoint: string) {
    if (!this.deps.checkpoints)
      throw new CoworkError(
        'unsupported',
        'checkpoints are off for this workspace ([checkpoints] enabled = false)',
      );
    return this.deps.checkpoints.patch(checkpoint, PATCH_BYTES);
  }

  async tasksStart(req: TaskStartRequest, origin: Origin): Promise<{ id: string }> {
    if (!this.deps.tasks)
      throw new CoworkError('unsupported', 'agent tasks are not available in this controller');
    return this.deps.tasks.start(req, origin);
  }

  tasksCancel(id: string, origin: Origin): void {
    if (!this.deps.tasks)
      throw new CoworkError('unsupported', 'agent tasks are not available in this controller');
    this.deps.tasks.cancel(id, origin);
  }

  /** Live agent events of every task (model text as it streams); returns an unsubscribe function. */
  taskEvents(listener: (taskId: string, event: { type: string }) => void): () => void {
    return this.deps.tasks?.subscribe?.(listener) ?? (() => {});
  }

  toolsList(): ToolInfo[] {
    return this.toolSessions().list();
  }

  toolsOpen(client: ToolClient): ToolSessionInfo {
    return this.toolSessions().open(client);
  }

  toolsClose(session: string): void {
    this.deps.toolSessions?.close(session);
  }

  /** An outside agent's tool call: its gate is over this controller's authorize/exec, like a task's. */
  toolsCall(req: ToolCallRequest, opts?: ToolCallStreams): Promise<ToolCallOutcome> {
    return this.toolSessions().call(req, opts);
  }

  private toolSessions(): ToolSessions {
    if (!this.deps.toolSessions)
      throw new CoworkError(
        'unsupported',
        'tool sessions (cowork-vm mcp) are not available in this controller',
      );
    return this.deps.toolSessions;
  }

  timelineQuery(q: { taskId?: string; afterId?: number; limit?: number }): unknown[] {
    return this.deps.timeline.query(q);
  }

  timelineSubscribe(listener: (event: unknown) => void): () => void {
    return this.deps.timeline.subscribe(listener);
  }

  async stop(_origin: Origin): Promise<void> {
    this.deps.onStopRequested?.();
  }

  get timelinePath(): string {
    return join(this.deps.stateDir, 'timeline.db');
  }
}

/** How much of a job's output its exec.finished keeps (the whole log is `cowork-vm logs`). */
const JOB_EXCERPT_BYTES = 64 * 1024;

function toSummary(t: {
  id: string;
  title: string;
  status: string;
  context: string;
  origin: string;
  createdAt: string | number;
  finishedAt?: string | number | null;
  outcome?: string | null;
  summary?: string | null;
}): TaskSummary {
  return {
    id: t.id,
    title: t.title,
    status: t.status,
    context: t.context as TaskSummary['context'],
    origin: t.origin,
    createdAt: String(t.createdAt),
    finishedAt: t.finishedAt ? String(t.finishedAt) : undefined,
    outcome: t.outcome ?? undefined,
    summary: t.summary ?? undefined,
  };
}

/** The timeline's record of a finished command (an exec, or a background job's end). */
function execFinished(result: ExecResult, jobId?: string) {
  return {
    type: 'exec.finished' as const,
    exitCode: result.exitCode,
    signal: result.signal,
    durationMs: result.durationMs,
    stdoutBytes: Buffer.byteLength(result.stdout),
    stderrBytes: Buffer.byteLength(result.stderr),
    truncated: result.truncated,
    timedOut: result.timedOut,
    stdoutExcerpt: result.stdout,
    stderrExcerpt: result.stderr,
    ...(jobId ? { jobId } : {}),
  };
}
