import type Anthropic from '@anthropic-ai/sdk';
import { z } from 'zod';
import { CoworkError } from '../errors.js';
import { limitBreachOf } from '../guardrails/index.js';
import { ToolRegistry } from '../tools/registry.js';
import type { ToolContext, ToolResult } from '../tools/types.js';
import { limitFromFigures } from './limits.js';
import { callModel, DEFAULT_RETRY, defaultSleep } from './model-call.js';
import { buildRequest } from './request.js';
import type { AgentEvent, AgentOutcome, AgentResult, ModelUsage, RunAgentTaskOptions } from './types.js';

// One default for config and the agent (config/schema.ts says how it is chosen).
export { DEFAULT_MODEL } from '../config/schema.js';
export const DEFAULT_MAX_TOKENS_PER_CALL = 8192;

interface TaskState {
  usage: ModelUsage;
  iterations: number;
  filesChanged: Set<string>;
  started: number;
}

/**
 * The tools see the task's signal even when the caller passed a separate one. A Proxy keeps
 * every other member of the caller's context (e.g. the browser tools' `browser()`), bound to
 * the original object so class methods and private fields keep working.
 */
function toolContextFor(ctx: ToolContext, signal: AbortSignal): ToolContext {
  if (signal === ctx.signal) return ctx;
  const combined = AbortSignal.any([ctx.signal, signal]);
  const execShell: ToolContext['execShell'] = (command, o) =>
    ctx.execShell(command, { ...o, signal: o?.signal ?? combined });
  return new Proxy(ctx, {
    get(target, prop) {
      if (prop === 'signal') return combined;
      if (prop === 'execShell') return execShell;
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

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
export async function runAgentTask(opts: RunAgentTaskOptions): Promise<AgentResult> {
  const signal = opts.signal ?? opts.ctx.signal;
  const registry = new ToolRegistry(opts.tools);
  const toolCtx = toolContextFor(opts.ctx, signal);
  const state: TaskState = {
    usage: { input: 0, output: 0, cacheWrite: 0, cacheRead: 0 },
    iterations: 0,
    filesChanged: new Set(),
    started: performance.now(),
  };
  const emit = (e: AgentEvent) => opts.onEvent?.(e);
  const taskId = opts.ctx.taskId;

  const finish = (outcome: AgentOutcome, summary: string, limit?: string): AgentResult => {
    const result: AgentResult = {
      outcome,
      summary,
      usage: { ...state.usage },
      costUsd: opts.budget.figures().costUsd,
      iterations: state.iterations,
      durationMs: Math.round(performance.now() - state.started),
      filesChanged: [...state.filesChanged].sort(),
      ...(limit ? { limit } : {}),
    };
    emit({ type: 'finished', result });
    return result;
  };
  const onLimit = (err: CoworkError): AgentResult => {
    const hit = limitBreachOf(err) ?? limitFromFigures(opts.budget.figures());
    if (hit) opts.timeline.record(taskId, { type: 'task.limit', ...hit, message: err.message });
    return finish('limit', err.message, hit?.name);
  };
  const onCancel = (): AgentResult => {
    // The canceller passes who it is as the abort reason (e.g. 'cli', 'terminal').
    const by = typeof signal.reason === 'string' && signal.reason !== '' ? signal.reason : 'signal';
    opts.timeline.record(taskId, { type: 'task.cancelled', by });
    return finish('cancelled', 'Task cancelled.');
  };

  const messages: Anthropic.MessageParam[] = [
    { role: 'user', content: [{ type: 'text', text: opts.prompt }] },
  ];
  const retry = { ...DEFAULT_RETRY, ...opts.retry };
  try {
    for (;;) {
      if (signal.aborted) return onCancel();
      opts.budget.checkBeforeCall();
      const call = await callModel({
        client: opts.client,
        params: buildRequest({ ...opts, registry, messages }),
        signal,
        retry,
        sleep: opts.sleep ?? defaultSleep,
        onText: (text) => emit({ type: 'text', text }),
        onRetry: (n) => {
          opts.timeline.record(taskId, {
            type: 'error',
            code: n.errorType,
            message: `model call attempt ${n.attempt} failed (${n.status ?? 'stream'} ${n.errorType}: ${n.message}); retrying in ${n.delayMs} ms`,
            where: 'model.call',
          });
          emit({ type: 'model.retry', ...n });
        },
      });
      state.iterations++;
      for (const k of ['input', 'output', 'cacheWrite', 'cacheRead'] as const)
        state.usage[k] += call.usage[k];
      const { message } = call;
      const costBefore = opts.budget.figures().costUsd;
      let overBudget: CoworkError | undefined;
      try {
        opts.budget.recordUsage(call.usage);
      } catch (err) {
        if (!CoworkError.is(err, 'limitExceeded')) throw err;
        overBudget = err;
      }
      const figures = opts.budget.figures();
      opts.timeline.record(taskId, {
        type: 'model.call',
        model: opts.model,
        usage: call.usage,
        stopReason: message.stop_reason ?? null,
        durationMs: Math.round(call.durationMs),
        attempt: call.attempt,
        // This call's cost (the budget event carries the running total).
        costUsd: figures.costUsd === null || costBefore === null ? null : figures.costUsd - costBefore,
      });
      opts.timeline.record(taskId, { type: 'budget', ...figures });
      emit({
        type: 'model.call',
        attempt: call.attempt,
        stopReason: message.stop_reason ?? null,
        usage: call.usage,
        durationMs: call.durationMs,
      });
      emit({ type: 'budget', figures });
      messages.push({ role: 'assistant', content: message.content });
      if (overBudget) return onLimit(overBudget);

      const uses = message.content.filter((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use');
      if (uses.length === 0) {
        if (message.stop_reason === 'max_tokens') {
          messages.push({ role: 'user', content: 'Your reply was cut off at the output limit. Continue.' });
          continue;
        }
        if (message.stop_reason === 'refusal')
          return finish('failed', lastText(message) || 'The model refused.');
        return finish('completed', lastText(message) || 'The model ended without a summary.');
      }
      const results: Anthropic.ToolResultBlockParam[] = [];
      let ended: { summary: string } | undefined;
      for (const use of uses) {
        if (signal.aborted) return onCancel();
        const truncated = message.stop_reason === 'max_tokens' && use === uses[uses.length - 1];
        const r = truncated
          ? {
              content: 'Your reply was cut off, so this tool call was not run. Retry with a smaller input.',
              isError: true,
            }
          : await runToolUse(use, registry, toolCtx, opts, emit);
        for (const f of r.filesChanged ?? []) state.filesChanged.add(f);
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
      if (signal.aborted) return onCancel();
      if (ended) return finish('completed', ended.summary);
      messages.push({ role: 'user', content: results });
    }
  } catch (err) {
    if (signal.aborted || CoworkError.is(err, 'cancelled')) return onCancel();
    if (CoworkError.is(err, 'limitExceeded')) return onLimit(err);
    const e = CoworkError.from(err);
    opts.timeline.record(taskId, { type: 'error', code: e.code, message: e.message, where: 'agent' });
    if (e.code === 'denied') throw e;
    return finish('failed', e.message);
  }
}

async function runToolUse(
  use: Anthropic.ToolUseBlock,
  registry: ToolRegistry,
  ctx: ToolContext,
  opts: RunAgentTaskOptions,
  emit: (e: AgentEvent) => void,
): Promise<ToolResult> {
  const taskId = ctx.taskId;
  opts.timeline.record(taskId, {
    type: 'tool.call',
    toolUseId: use.id,
    name: use.name,
    inputExcerpt: JSON.stringify(use.input),
  });
  const result = await executeTool(use, registry, ctx, emit);
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

async function executeTool(
  use: Anthropic.ToolUseBlock,
  registry: ToolRegistry,
  ctx: ToolContext,
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
    return await tool.run(parsed.data, ctx);
  } catch (err) {
    if (ctx.signal.aborted) throw new CoworkError('cancelled', 'task cancelled', err);
    // The VM or the controller is gone (or a bug): fail the task closed rather than let the model improvise.
    if (!CoworkError.is(err) || err.code === 'unavailable' || err.code === 'internal') throw err;
    return { content: err.message, isError: true, denied: err.code === 'denied' };
  }
}
