import type Anthropic from '@anthropic-ai/sdk';
import type { BudgetFigures, TimelineEvent } from '../timeline/events.js';
import type { AnyTool, ToolGate } from '../tools/types.js';

/** Token figures of one model call, in the timeline's vocabulary. */
export interface ModelUsage {
  input: number;
  output: number;
  cacheWrite: number;
  cacheRead: number;
}

/**
 * What the loop needs from the budget (guardrails' BudgetTracker satisfies it). Both checks
 * throw CoworkError('limitExceeded', …) naming the limit; `recordUsage` throws after adding
 * a call that went over.
 */
export interface AgentBudget {
  checkBeforeCall(): void;
  recordUsage(usage: ModelUsage): void;
  figures(): BudgetFigures;
}

/** What the loop needs from the timeline (the Timeline class satisfies it). */
export interface AgentTimeline {
  record(taskId: string, event: TimelineEvent): unknown;
}

/** Live events for a terminal or a control-API client; the timeline is the durable record. */
export type AgentEvent =
  | { type: 'text'; text: string }
  | { type: 'model.retry'; attempt: number; status: number | null; errorType: string; delayMs: number }
  | { type: 'model.call'; attempt: number; stopReason: string | null; usage: ModelUsage; durationMs: number }
  | { type: 'tool.call'; id: string; name: string; description: string; input: unknown }
  | { type: 'tool.result'; id: string; name: string; isError: boolean; denied: boolean; content: string }
  | { type: 'budget'; figures: BudgetFigures }
  | { type: 'finished'; result: AgentResult };

export type AgentOutcome = 'completed' | 'failed' | 'cancelled' | 'limit';

export interface AgentResult {
  outcome: AgentOutcome;
  summary: string;
  usage: ModelUsage;
  costUsd: number | null;
  iterations: number;
  durationMs: number;
  /** Workspace-relative paths written by file tools (shell commands may change more). */
  filesChanged: string[];
  /** For 'limit': which one (the budget's message says the figure and the limit). */
  limit?: string;
}

export interface RetryPolicy {
  /** Retries after the first attempt, for 429 / 5xx / 529 overloaded / connection errors. */
  maxRetries: number;
  /** First backoff when the server gives no retry-after; doubles each attempt, with jitter. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export interface RunAgentTaskOptions {
  prompt: string;
  model: string;
  client: Anthropic;
  tools: AnyTool[];
  /** The task's enforcement path: every tool call gets one decision on it, then scoped guest access. */
  ctx: ToolGate;
  budget: AgentBudget;
  timeline: AgentTimeline;
  onEvent?: (event: AgentEvent) => void;
  /** Defaults to ctx.signal; aborting stops the in-flight model call and guest command. */
  signal?: AbortSignal;
  maxTokensPerCall?: number;
  /** Appended to the built-in system prompt (e.g. workspace conventions). */
  systemExtra?: string;
  retry?: Partial<RetryPolicy>;
  /** Injected for tests that must not wait on the clock; default setTimeout. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}
