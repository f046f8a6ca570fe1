import type { z } from 'zod';
import type { ExecOutcome } from '../control/api.js';
import type { Decision, PolicyRequest, Risk } from '../policy/types.js';
import type { GuestSession } from '../ssh/types.js';

/**
 * The tool seam. A tool describes itself (name, risk, zod input) and runs against a
 * ToolContext that the CONTROLLER builds: the controller owns the one enforcement path
 * (policy → approval → execute in the guest → record). Tools never decide on their own and
 * never touch the host filesystem: shell commands go through `ctx.execShell`, file I/O goes
 * through `ctx.authorize` first and then through the GuestSession (SFTP or exec).
 */

export interface AuthorizeOutcome {
  allowed: boolean;
  decision: Decision;
  /** Why not, when !allowed: told to the model so it can adapt. */
  reason?: string;
}

export interface ShellExecOptions {
  cwd?: string;
  timeoutMs?: number;
  maxOutputBytes?: number;
  signal?: AbortSignal;
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
}

/** Extra events a tool may add to the task's timeline (the loop records tool.call/tool.result itself). */
export interface ToolEvent {
  type: string;
  [key: string]: unknown;
}

export interface ToolContext {
  taskId: string;
  /** Aborted when the task is cancelled: tools MUST pass it to every guest operation they start. */
  signal: AbortSignal;
  session: GuestSession;
  /** Host path of the workspace (the guest sees it at /workspace). For the path guard only — no host I/O. */
  workspace: string;
  /** Policy + approval for a non-shell tool call; the controller records the decision. */
  authorize(req: PolicyRequest): Promise<AuthorizeOutcome>;
  /** The ControllerApi.exec path: policy + approval + run in the guest + record. */
  execShell(command: string, opts?: ShellExecOptions): Promise<ExecOutcome>;
  maxFileSizeMB: number;
  record(event: ToolEvent): void;
}

export interface ToolResult {
  /** What the model is told (already abridged to a sensible size). */
  content: string;
  isError?: boolean;
  /** Policy or approval said no. */
  denied?: boolean;
  /** Set by task_complete: the loop ends the task with this summary after feeding the result. */
  endTask?: { summary: string };
  /** Workspace-relative paths this call wrote. */
  filesChanged?: string[];
}

export interface Tool<I = unknown> {
  name: string;
  risk: Risk;
  /** What the model reads to decide when to use the tool. */
  description: string;
  input: z.ZodType<I>;
  /** One human line for the terminal and timeline, e.g. `write_file src/a.ts (120 bytes)`. */
  describe(input: I): string;
  /** Workspace paths the call touches, for the path guard (guest paths: relative or /workspace/...). */
  paths?(input: I): { path: string; access: 'read' | 'write' | 'edit'; scope?: 'entries' | 'tree' }[];
  run(input: I, ctx: ToolContext): Promise<ToolResult>;
}

/** A tool of any input type, as held in a registry. */
// biome-ignore lint/suspicious/noExplicitAny: the registry holds tools of heterogeneous input types
export type AnyTool = Tool<any>;
