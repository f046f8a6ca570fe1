import type { z } from 'zod';
import type { ExecOutcome } from '../api/controller.js';
import type { GuestBrowser } from '../browser/guest-browser.js';
import type { Decision, PolicyRequest, Risk } from '../policy/types.js';
import type { BrowserHandle } from './browser-handle.js';
import type { GuestFileGrant, GuestFiles, ToolPath } from './guest-files.js';

/**
 * The tool seam. A tool describes itself (name, risk, zod input) and DECLARES what a call
 * touches (`claim`: a shell command, workspace paths, a URL). The agent loop turns that claim
 * into exactly one decision on the controller's enforcement path (policy → approval → record)
 * and only then runs the tool, handing it guest I/O scoped to that decision: the shell tool
 * gets a handle that runs the decided command once, a file tool a handle that reaches only the
 * decided paths, a browser tool the task's browser for the decided URL. No tool can reach the
 * guest session itself, ask for a decision of its own, or touch the host filesystem.
 */

export type { ToolPath } from './guest-files.js';

/** A non-shell tool request, as the policy judges it. */
export type ToolPolicyRequest = Extract<PolicyRequest, { kind: 'tool' }>;

/** What one tool call touches; the loop asks for one decision about exactly this. */
export type ToolClaim =
  /** Touches nothing (task_complete): no decision. */
  | { kind: 'none' }
  /** One command line, decided and run by the ControllerApi.exec path. */
  | { kind: 'shell'; command: string; cwd: string }
  /** Workspace paths (already resolved guest paths), decided by the policy's path guard and rules. */
  | { kind: 'files'; paths: ToolPath[] }
  /**
   * The task's browser. `url` is the page the call opens or acts on: it is checked against the
   * egress rules and recorded. Without it the call is judged by the current page's URL.
   * `paths` are workspace files the call writes (a screenshot).
   */
  | { kind: 'browser'; url?: string; paths?: ToolPath[] };

export type ToolAccess = ToolClaim['kind'];

/** A decision for a non-shell tool call, with guest access scoped to it when allowed. */
export type ToolAuthorization =
  | { allowed: false; decision: Decision; reason?: string }
  /** `guest` reaches exactly the request's paths, with their access; the loop revokes it after the call. */
  | { allowed: true; decision: Decision; guest: GuestFileGrant };

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

/** An egress verdict for a URL ('ask' counts as allowed: the proxy asks when the request is made). */
export type UrlCheck = (url: string) => { allowed: boolean; reason?: string };

/** The task's browser as the gate holds it (launched on first use by the sandbox). */
export interface TaskBrowser {
  browser(): Promise<GuestBrowser>;
  checkUrl: UrlCheck;
}

/**
 * The task's side of the enforcement path, held by the agent loop and never by a tool. The
 * task runner builds it over the Controller; tests build it over an in-memory guest.
 */
export interface ToolGate {
  taskId: string;
  /** Aborted when the task is cancelled. */
  signal: AbortSignal;
  maxFileSizeMB: number;
  /** One policy decision (+ approval) for a non-shell tool call; the controller records it. */
  authorize(req: ToolPolicyRequest, signal: AbortSignal): Promise<ToolAuthorization>;
  /** The ControllerApi.exec path: policy + approval + run in the guest + record. */
  exec(command: string, opts: ShellExecOptions): Promise<ExecOutcome>;
  record(event: ToolEvent): void;
  /** The task's browser, when the sandbox's image has one. */
  browser?: TaskBrowser;
}

/** Runs the decided command line, at most once; the decision is made on that path. */
export interface ShellHandle {
  readonly command: string;
  readonly cwd: string;
  run(opts: { timeoutMs: number; maxOutputBytes?: number }): Promise<ExecOutcome>;
}

/** What every tool call sees. */
export interface ToolCallContext {
  taskId: string;
  /** Aborted when the task is cancelled: tools MUST pass it to every operation they start. */
  signal: AbortSignal;
  maxFileSizeMB: number;
  record(event: ToolEvent): void;
}

/** What a tool call sees, by the kind of claim the tool makes. */
export interface ToolScopes {
  none: ToolCallContext;
  shell: ToolCallContext & { shell: ShellHandle };
  files: ToolCallContext & { files: GuestFiles };
  browser: ToolCallContext & { browser: BrowserHandle; files: GuestFiles };
}

export type ToolContext<K extends ToolAccess = ToolAccess> = ToolScopes[K];

/** What `claim` may look at: nothing of the guest but the current page's URL. */
export interface ClaimEnv {
  /** The URL of the browser's current page (undefined without a browser or a page). */
  pageUrl(): Promise<string | undefined>;
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

export interface Tool<I = unknown, K extends ToolAccess = ToolAccess> {
  name: string;
  risk: Risk;
  /** Which guest access the tool needs; `claim` returns a claim of this kind. */
  access: K;
  /** What the model reads to decide when to use the tool. */
  description: string;
  input: z.ZodType<I>;
  /** One human line for the terminal and timeline, e.g. `write_file src/a.ts (120 bytes)`. */
  describe(input: I): string;
  /** A refusal that needs no decision (the content is over the size limit): nobody is asked. */
  precheck?(input: I, limits: { maxFileSizeMB: number }): ToolResult | undefined;
  /** What the call touches. Paths MUST be resolved guest paths: what is decided is what is touched. */
  claim(input: I, env: ClaimEnv): Extract<ToolClaim, { kind: K }> | Promise<Extract<ToolClaim, { kind: K }>>;
  run(input: I, ctx: ToolContext<K>): Promise<ToolResult>;
}

/** A tool of any input type, as held in a registry. */
// biome-ignore lint/suspicious/noExplicitAny: the registry holds tools of heterogeneous input types
export type AnyTool = Tool<any, any>;
