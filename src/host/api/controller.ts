import type { PendingApproval, Verdict } from '../approvals/types.js';
import type { ForwardInfo, JobChunk, JobInfo } from '../jobs/index.js';
import type { Decision, Effect, LayerName, PolicyContextName } from '../policy/types.js';
import type { ExecResult } from '../ssh/types.js';
import type { ProtectedChange } from '../workspace/index.js';
import type { Role } from './roles.js';

/**
 * The controller's programmatic surface: what every frontend's methods (contract.ts) are
 * bound to. The local Unix socket (CLI), the WebSocket API (dashboard, menubar) and messaging
 * channels all dispatch to this one object, so they cannot drift apart. Callers pass who they
 * are (`origin`) and the policy context; the controller never trusts a transport to have made
 * a decision.
 */
export interface Origin {
  /** 'cli', 'terminal', 'device:<id>', 'telegram:<userId>' */
  id: string;
  context: PolicyContextName;
}

export interface StatusInfo {
  workspace: string;
  state: 'starting' | 'running' | 'stopping' | 'stopped' | 'crashed';
  pid: number; // controller pid
  vm: {
    driver: string;
    pid?: number;
    accel: string;
    share: string;
    image: string;
    imageHash?: string;
    cpus: number;
    memoryMiB: number;
    sshPort?: number;
    bootMs?: number;
    bootSteps?: Record<string, number>;
    startedAt?: string;
  };
  egress?: { listening: boolean; port?: number };
  control?: { listen?: string };
  dashboard?: { url: string };
  pendingApprovals: number;
  tasks: { running: number };
  jobs?: { running: number };
  forwards?: ForwardInfo[];
  /** The cache disk of this boot (`cowork-vm cache ls`). */
  cache?: { name: string; sizeBytes: number; kind: 'workspace' | 'shared' };
}

/** `exec --background`: a guest command that runs on after the answer (src/host/jobs/). */
export interface JobStartRequest {
  command: string;
  cwd?: string;
  timeoutMs?: number;
  taskId?: string;
}

export interface JobStartOutcome {
  decision: Decision;
  /** Present when it was allowed and started. */
  job?: JobInfo;
  deniedReason?: string;
}

export interface ExecRequest {
  command: string;
  cwd?: string;
  timeoutMs?: number;
  maxOutputBytes?: number;
  stdin?: string;
  taskId?: string;
}

export interface ExecOutcome {
  decision: Decision;
  /** Present when the command ran. */
  result?: ExecResult;
  /** Present when denied (by policy or by an approval answer): what the user/agent is told. */
  deniedReason?: string;
  approvalId?: string;
  /** Protected paths the command created in the guest, which the host quarantined. */
  protectedChanges?: ProtectedChange[];
  /** The checkpoint taken before an agent-context command outside a task (`cowork-vm diff ID`). */
  checkpoint?: string;
}

export interface TaskSummary {
  id: string;
  title: string;
  status: string;
  context: PolicyContextName;
  origin: string;
  createdAt: string;
  finishedAt?: string;
  outcome?: string;
  summary?: string;
}

/** Budgets of one task. They can only tighten the configured `[budgets]`, never raise them. */
export interface TaskLimits {
  maxTokens?: number;
  maxCostUsd?: number;
  maxIterations?: number;
}

export interface TaskStartRequest {
  prompt: string;
  model?: string;
  /** ANTHROPIC_API_KEY from the owner's environment; it stays on the host (controller → SDK). */
  apiKeyOverride?: string;
  limits?: TaskLimits;
}

export interface ExecStreams {
  signal?: AbortSignal;
  onStdout?: (c: Buffer) => void;
  onStderr?: (c: Buffer) => void;
}

/** What `policy.check` answers: the engine's decision for a command, nothing run, nobody asked. */
export interface PolicyCheck {
  verdict: Effect;
  reasons: string[];
  layer: LayerName;
  rule?: string;
  context: PolicyContextName;
}

/** A one-time dashboard login URL (src/host/dashboard/) and when its token expires (epoch ms). */
export interface DashboardLogin {
  url: string;
  expiresAt: number;
}

/** A live event of a running task (the model's text as it streams); the timeline is the durable record. */
export interface TaskLiveEvent {
  type: string;
  [key: string]: unknown;
}

/** A tool as an outside agent (an MCP client) sees it; `inputSchema` comes from the tool's zod input. */
export interface ToolInfo {
  name: string;
  description: string;
  inputSchema: { type: 'object'; [key: string]: unknown };
}

/** The outside agent, as its MCP `initialize` named itself. */
export interface ToolClient {
  name: string;
  version: string;
}

/** An open tool session: its calls are recorded in `taskId` and decided as `origin` in the agent context. */
export interface ToolSessionInfo {
  session: string;
  taskId: string;
  origin: string;
  maxCalls: number;
  maxSessionMinutes: number;
}

export interface ToolCallRequest {
  session: string;
  tool: string;
  input: unknown;
}

/** What the outside agent is told: output, or why nothing ran and what the user can do. */
export interface ToolCallOutcome {
  text: string;
  isError: boolean;
  denied: boolean;
}

export interface ToolCallStreams {
  signal?: AbortSignal;
  /** The call waits for this approval (so the client can tell its user whom to ask). */
  onApproval?: (approval: { id: string; reasons: string[] }) => void;
}

export interface ControllerApi {
  status(): Promise<StatusInfo>;
  exec(req: ExecRequest, origin: Origin, opts?: ExecStreams): Promise<ExecOutcome>;
  approvalsList(): PendingApproval[];
  approvalsAnswer(id: string, verdict: Omit<Verdict, 'by'>, origin: Origin): void;
  tasksList(opts?: { limit?: number }): TaskSummary[];
  tasksGet(id: string): TaskSummary;
  /** A checkpoint's patch (at most PATCH_BYTES); absent when checkpoints are off. */
  tasksDiff?(
    checkpoint: string,
  ): Promise<{ checkpoint: string; patch: string; truncated: boolean; live: boolean }>;
  /** Starts an agent task; resolves with its id once started. */
  tasksStart(req: TaskStartRequest, origin: Origin): Promise<{ id: string }>;
  tasksCancel(id: string, origin: Origin): void;
  timelineQuery(q: { taskId?: string; afterId?: number; limit?: number }): unknown[];
  /** Live events; returns an unsubscribe function. */
  timelineSubscribe(listener: (event: unknown) => void): () => void;
  /** Live agent events of every task; absent when the controller runs no agent tasks. */
  taskEvents?(listener: (taskId: string, event: TaskLiveEvent) => void): () => void;
  /** The policy decision for a command in the origin's context, without running or asking. */
  policyCheck?(req: { command: string; cwd?: string }, origin: Origin): PolicyCheck;
  /** A login URL for the dashboard, bound to the caller; absent or refusing when the dashboard is off. */
  dashboardLogin?(req: { role?: Role }, origin: Origin): DashboardLogin;
  /** The tools outside agents may call (never task_complete); absent when tool sessions are off. */
  toolsList?(): ToolInfo[];
  /** Opens a tool session for an outside agent; its calls run as `mcp:<name>@<version>` in the agent context. */
  toolsOpen?(client: ToolClient): ToolSessionInfo;
  /** Ends a tool session (its client went away): its task finishes, its scope and browser go. */
  toolsClose?(session: string): void;
  /** One tool call of a session, on the enforcement path; resolves with what the agent is told. */
  toolsCall?(req: ToolCallRequest, opts?: ToolCallStreams): Promise<ToolCallOutcome>;
  /** Background jobs: started through the same decision as exec; absent when the controller has none. */
  jobsStart?(req: JobStartRequest, origin: Origin, opts?: { signal?: AbortSignal }): Promise<JobStartOutcome>;
  jobsList?(): JobInfo[];
  /** A job's held output through `emit`, then (follow) new output until it ends or `signal` aborts. */
  jobsLogs?(
    id: string,
    emit: (c: JobChunk) => void,
    opts: { follow?: boolean; signal?: AbortSignal },
  ): Promise<JobInfo>;
  jobsKill?(id: string, origin: Origin): Promise<JobInfo>;
  /** A guest port on the host's 127.0.0.1; only the `local` context may open one. */
  forwardOpen?(req: { guestPort: number; hostPort?: number }, origin: Origin): Promise<ForwardInfo>;
  forwardClose?(hostPort: number, origin: Origin): Promise<ForwardInfo>;
  stop(origin: Origin): Promise<void>;
}
