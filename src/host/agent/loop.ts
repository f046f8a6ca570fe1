import type Anthropic from '@anthropic-ai/sdk';
import { z } from 'zod';
import { CoworkError } from '../errors.js';
import { limitBreachOf } from '../guardrails/index.js';
import { runToolCall } from '../tools/call.js';
import { ToolRegistry } from '../tools/registry.js';
import type { ToolGate, ToolResult } from '../tools/types.js';
import { limitFromFigures } from './limits.js';
import { callModel, DEFAULT_RETRY, defaultSleep, type ModelCallResult } from './model-call.js';
import { buildRequest } from './request.js';
import type { AgentEvent, AgentOutcome, AgentResult, ModelUsage, RunAgentTaskOptions } from './types.js';

// One default for config and the agent (config/schema.ts says how it is chosen).
export { DEFAULT_MODEL } from '../config/schema.js';
export const DEFAULT_MAX_TOKENS_PER_CALL = 8192;

function lastText(message: Anthropic.Message): string {
  return message.content
    .filter((b): b is Anthropic.TextBlock => b.type === 'text')
    .map((b) => b.text)
    .join('\n')
    .trim();
}

/**
 * Runs one agent task to its end: model call → tool calls (each through the controller's
 * enforcement path) → results back to the model, until task_complete, a final answer, a
 * budget limit, cancellation or failure. Resolves for every outcome; rejects only when the
 * task cannot run at all (the API key was rejected: CoworkError 'denied').
 */
export function runAgentTask(opts: RunAgentTaskOptions): Promise<AgentResult> {
  return new AgentTask(opts).run();
}

/** One task's conversation and figures; each turn of the loop is a named step below. */
class AgentTask {
  readonly #opts: RunAgentTaskOptions;
  readonly #signal: AbortSignal;
  readonly #registry: ToolRegistry;
  readonly #taskId: string;
  readonly #messages: Anthropic.MessageParam[];
  readonly #usage: ModelUsage = { input: 0, output: 0, cacheWrite: 0, cacheRead: 0 };
  readonly #filesChanged = new Set<string>();
  readonly #started = performance.now();
  #iterations = 0;

  constructor(opts: RunAgentTaskOptions) {
    this.#opts = opts;
    this.#signal = opts.signal ?? opts.ctx.signal;
    this.#registry = new ToolRegistry(opts.tools);
    this.#taskId = opts.ctx.taskId;
    this.#messages = [{ role: 'user', content: [{ type: 'text', text: opts.prompt }] }];
  }

  async run(): Promise<AgentResult> {
    try {
      for (;;) {
        const ended = await this.#turn();
        if (ended) return ended;
      }
    } catch (err) {
      return this.#failed(err);
    }
  }

  /** One model call and the tool calls it asks for; the task's result when this turn ends it. */
  async #turn(): Promise<AgentResult | undefined> {
    if (this.#signal.aborted) return this.#cancelled();
    this.#opts.budget.checkBeforeCall();
    const call = await this.#callModel();
    const overBudget = this.#account(call);
    const { message } = call;
    this.#messages.push({ role: 'assistant', content: message.content });
    if (overBudget) return this.#limited(overBudget);
    const uses = message.content.filter((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use');
    if (uses.length === 0) return this.#answered(message);
    return this.#runTools(message, uses);
  }

  #callModel(): Promise<ModelCallResult> {
    const opts = this.#opts;
    return callModel({
      client: opts.client,
      params: buildRequest({ ...opts, registry: this.#registry, messages: this.#messages }),
      signal: this.#signal,
      retry: { ...DEFAULT_RETRY, ...opts.retry },
      sleep: opts.sleep ?? defaultSleep,
      onText: (text) => this.#emit({ type: 'text', text }),
      onRetry: (n) => {
        opts.timeline.record(this.#taskId, {
          type: 'error',
          code: n.errorType,
          message: `model call attempt ${n.attempt} failed (${n.status ?? 'stream'} ${n.errorType}: ${n.message}); retrying in ${n.delayMs} ms`,
          where: 'model.call',
        });
        this.#emit({ type: 'model.retry', ...n });
      },
    });
  }

  /** Adds the call to the figures, the budget and the timeline; the budget's error when it went over. */
  #account(call: ModelCallResult): CoworkError | undefined {
    const { budget, timeline, model } = this.#opts;
    this.#iterations++;
    for (const k of ['input', 'output', 'cacheWrite', 'cacheRead'] as const) this.#usage[k] += call.usage[k];
    const costBefore = budget.figures().costUsd;
    let overBudget: CoworkError | undefined;
    try {
      budget.recordUsage(call.usage);
    } catch (err) {
      if (!CoworkError.is(err, 'limitExceeded')) throw err;
      overBudget = err;
    }
    const figures = budget.figures();
    const stopReason = call.message.stop_reason ?? null;
    timeline.record(this.#taskId, {
      type: 'model.call',
      model,
      usage: call.usage,
      stopReason,
      durationMs: Math.round(call.durationMs),
      attempt: call.attempt,
      // This call's cost (the budget event carries the running total).
      costUsd: figures.costUsd === null || costBefore === null ? null : figures.costUsd - costBefore,
    });
    timeline.record(this.#taskId, { type: 'budget', ...figures });
    const { attempt, usage, durationMs } = call;
    this.#emit({ type: 'model.call', attempt, stopReason, usage, durationMs });
    this.#emit({ type: 'budget', figures });
    return overBudget;
  }

  /** A reply without tool calls: the task's answer, unless it was cut off (then ask for the rest). */
  #answered(message: Anthropic.Message): AgentResult | undefined {
    if (message.stop_reason === 'max_tokens') {
      this.#messages.push({ role: 'user', content: 'Your reply was cut off at the output limit. Continue.' });
      return undefined;
    }
    if (message.stop_reason === 'refusal')
      return this.#finish('failed', lastText(message) || 'The model refused.');
    return this.#finish('completed', lastText(message) || 'The model ended without a summary.');
  }

  /** The reply's tool calls, one after another; their results go back to the model. */
  async #runTools(
    message: Anthropic.Message,
    uses: Anthropic.ToolUseBlock[],
  ): Promise<AgentResult | undefined> {
    const results: Anthropic.ToolResultBlockParam[] = [];
    let ended: { summary: string } | undefined;
    for (const use of uses) {
      if (this.#signal.aborted) return this.#cancelled();
      const truncated = message.stop_reason === 'max_tokens' && use === uses[uses.length - 1];
      const r = truncated
        ? {
            content: 'Your reply was cut off, so this tool call was not run. Retry with a smaller input.',
            isError: true,
          }
        : await runToolUse(use, this.#registry, this.#opts.ctx, this.#signal, this.#opts, (e) =>
            this.#emit(e),
          );
      for (const f of r.filesChanged ?? []) this.#filesChanged.add(f);
      results.push({
        type: 'tool_result',
        tool_use_id: use.id,
        content: r.content,
        is_error: r.isError === true,
      });
      if (r.endTask) {
        ended = r.endTask;
        break;
      }
    }
    if (this.#signal.aborted) return this.#cancelled();
    if (ended) return this.#finish('completed', ended.summary);
    this.#messages.push({ role: 'user', content: results });
    return undefined;
  }

  #emit(e: AgentEvent): void {
    this.#opts.onEvent?.(e);
  }

  #finish(outcome: AgentOutcome, summary: string, limit?: string): AgentResult {
    const result: AgentResult = {
      outcome,
      summary,
      usage: { ...this.#usage },
      costUsd: this.#opts.budget.figures().costUsd,
      iterations: this.#iterations,
      durationMs: Math.round(performance.now() - this.#started),
      filesChanged: [...this.#filesChanged].sort(),
      ...(limit ? { limit } : {}),
    };
    this.#emit({ type: 'finished', result });
    return result;
  }

  #limited(err: CoworkError): AgentResult {
    const hit = limitBreachOf(err) ?? limitFromFigures(this.#opts.budget.figures());
    if (hit) this.#opts.timeline.record(this.#taskId, { type: 'task.limit', ...hit, message: err.message });
    return this.#finish('limit', err.message, hit?.name);
  }

  #cancelled(): AgentResult {
    // The canceller passes who it is as the abort reason (e.g. 'cli', 'terminal').
    const reason = this.#signal.reason;
    const by = typeof reason === 'string' && reason !== '' ? reason : 'signal';
    this.#opts.timeline.record(this.#taskId, { type: 'task.cancelled', by });
    return this.#finish('cancelled', 'Task cancelled.');
  }

  #failed(err: unknown): AgentResult {
    if (this.#signal.aborted || CoworkError.is(err, 'cancelled')) return this.#cancelled();
    if (CoworkError.is(err, 'limitExceeded')) return this.#limited(err);
    const e = CoworkError.from(err);
    this.#opts.timeline.record(this.#taskId, {
      type: 'error',
      code: e.code,
      message: e.message,
      where: 'agent',
    });
    if (e.code === 'denied') throw e;
    return this.#finish('failed', e.message);
  }
}

async function runToolUse(
  use: Anthropic.ToolUseBlock,
  registry: ToolRegistry,
  gate: ToolGate,
  signal: AbortSignal,
  opts: RunAgentTaskOptions,
  emit: (e: AgentEvent) => void,
): Promise<ToolResult> {
  const taskId = gate.taskId;
  opts.timeline.record(taskId, {
    type: 'tool.call',
    toolUseId: use.id,
    name: use.name,
    inputExcerpt: JSON.stringify(use.input),
  });
  const result = await executeTool(use, registry, gate, signal, emit);
  opts.timeline.record(taskId, {
    type: 'tool.result',
    toolUseId: use.id,
    name: use.name,
    isError: result.isError === true,
    outputBytes: Buffer.byteLength(result.content),
    outputExcerpt: result.content,
  });
  emit({
    type: 'tool.result',
    id: use.id,
    name: use.name,
    isError: result.isError === true,
    denied: result.denied === true,
    content: result.content,
  });
  return result;
}

/** Parses the input, then the one decision and the scoped run (tools/call.ts). */
async function executeTool(
  use: Anthropic.ToolUseBlock,
  registry: ToolRegistry,
  gate: ToolGate,
  signal: AbortSignal,
  emit: (e: AgentEvent) => void,
): Promise<ToolResult> {
  const tool = registry.get(use.name);
  if (!tool) {
    return {
      content: `There is no tool "${use.name}". Available: ${registry.names().join(', ')}.`,
      isError: true,
    };
  }
  const parsed = tool.input.safeParse(use.input);
  if (!parsed.success) {
    return { content: `Invalid input for ${use.name}:\n${z.prettifyError(parsed.error)}`, isError: true };
  }
  let description: string;
  try {
    description = tool.describe(parsed.data);
  } catch {
    description = use.name;
  }
  emit({ type: 'tool.call', id: use.id, name: use.name, description, input: parsed.data });
  try {
    return await runToolCall(tool, parsed.data, gate, signal);
  } catch (err) {
    if (signal.aborted) throw new CoworkError('cancelled', 'task cancelled', err);
    // The VM or the controller is gone (or a bug): fail the task closed rather than let the model improvise.
    if (!CoworkError.is(err) || err.code === 'unavailable' || err.code === 'internal') throw err;
    return { content: err.message, isError: true, denied: err.code === 'denied' };
  }
}
