import Anthropic from '@anthropic-ai/sdk';
import type { ExecOutcome, ExecRequest, Origin } from '../api/controller.js';
import { type BudgetLimits, tighterLimits } from '../api/limits.js';
import type { TaskCheckpoints } from '../checkpoints/index.js';
import { CoworkError } from '../errors.js';
import { BudgetTracker, type PriceOverride } from '../guardrails/index.js';
import { resolveAnthropicKey } from '../secrets/anthropic-key.js';
import type { SecretStore } from '../secrets/types.js';
import type { Timeline } from '../timeline/index.js';
import { defaultTools } from '../tools/registry.js';
import type { AnyTool, ToolAuthorization, ToolEvent, ToolGate, ToolPolicyRequest } from '../tools/types.js';
import { DEFAULT_MODEL, runAgentTask } from './loop.js';
import type { AgentEvent, AgentResult, RetryPolicy } from './types.js';

/**
 * The controller's enforcement path, as the agent uses it (the sandbox Controller satisfies it):
 * the only way a tool call reaches the guest. `authorize` hands back guest file access scoped to
 * what it decided; `exec` decides and runs one command line.
 */
export interface EnforcementPath {
  authorize(
    request: ToolPolicyRequest,
    origin: Origin,
    taskId: string | undefined,
    signal?: AbortSignal,
  ): Promise<ToolAuthorization>;
  exec(
    req: ExecRequest,
    origin: Origin,
    opts?: { signal?: AbortSignal; onStdout?: (c: Buffer) => void; onStderr?: (c: Buffer) => void },
  ): Promise<ExecOutcome>;
}

export interface AgentTaskRunnerOptions {
  /** May be attached later with `attach()` (the Controller takes the runner in its constructor). */
  controller?: EnforcementPath;
  timeline: Timeline;
  secrets: SecretStore;
  limits: { maxTokens?: number; maxCostUsd?: number; maxIterations?: number; maxFileSizeMB: number };
  model?: string;
  maxOutputTokens?: number;
  pricing?: Readonly<Record<string, PriceOverride>>;
  tools?: AnyTool[];
  /** Where the Messages API is (tests: the local stand-in). Default: the SDK's. */
  baseURL?: string;
  retry?: Partial<RetryPolicy>;
  /**
   * Adds to each task's gate what extra tools need (the browser tools' task browser); pass those
   * tools in `tools`. Called once as the task starts.
   */
  extendContext?: (base: ToolGate) => ToolGate;
  /**
   * Called exactly once when a task ends, however it ends (done, failed, cancelled, its loop
   * crashed, or it never got going): where per-task state is disposed.
   */
  onTaskEnd?: (taskId: string) => void;
  /** Live events per task, for terminals and control-API clients. */
  onEvent?: (taskId: string, event: AgentEvent) => void;
  /** Process env for ANTHROPIC_API_KEY (the controller's own); default process.env. */
  env?: NodeJS.ProcessEnv;
  /**
   * The workspace checkpoint around each task: taken before the task's first model call (no
   * checkpoint, no task), its change set recorded when the task ends and reported as the task's
   * `filesChanged` (shell side effects included).
   */
  checkpoints?: Pick<TaskCheckpoints, 'before' | 'after'>;
}

interface RunningTask {
  abort: AbortController;
  done: Promise<AgentResult | undefined>;
}

/**
 * Starts agent tasks inside the controller (the TaskRunner the Controller dispatches
 * tasks.start/cancel to). Each task gets its own budget, abort signal and ToolGate whose
 * tool calls go through the controller's one enforcement path in the policy context 'agent'
 * (or 'gateway' when a remote channel started it — never 'local': the model is not the user).
 * The API key is resolved here, on the host, and handed only to the SDK client.
 */
export class AgentTaskRunner {
  readonly #opts: AgentTaskRunnerOptions;
  readonly #tasks = new Map<string, RunningTask>();
  #controller: EnforcementPath | undefined;
  readonly #listeners = new Set<(taskId: string, event: AgentEvent) => void>();

  constructor(opts: AgentTaskRunnerOptions) {
    this.#opts = opts;
    this.#controller = opts.controller;
  }

  /** Connects the runner to the controller whose enforcement path every tool call takes. */
  attach(controller: EnforcementPath): this {
    this.#controller = controller;
    return this;
  }

  async start(
    req: { prompt: string; model?: string; apiKeyOverride?: string; limits?: BudgetLimits },
    origin: Origin,
  ): Promise<{ id: string }> {
    const controller = this.#controller;
    if (!controller)
      throw new CoworkError('internal', 'the agent task runner is not attached to a controller');
    const model = req.model ?? this.#opts.model ?? DEFAULT_MODEL;
    // Before the task exists: a missing key or an unpriced model with a cost budget is the caller's to fix.
    const { key, source } = await this.#resolveKey(req.apiKeyOverride);
    const budget = this.#budget(model, req.limits);
    const context = origin.context === 'gateway' ? 'gateway' : 'agent';
    const id = this.#opts.timeline.createTask({ title: titleOf(req.prompt), context, origin: origin.id }).id;
    this.#opts.timeline.record(id, {
      type: 'secret.used',
      name: 'anthropic',
      purpose: `model calls (${source})`,
    });
    await this.#checkpointBefore(id, req.prompt);
    const abort = new AbortController();
    const gate = this.#gate(controller, id, { id: `task:${id}`, context }, abort.signal);
    const done = this.#run(id, { prompt: req.prompt, model, key, budget, gate, signal: abort.signal });
    this.#tasks.set(id, { abort, done });
    return { id };
  }

  /** Fail closed: a task whose workspace could not be recorded does not run. */
  async #checkpointBefore(id: string, prompt: string): Promise<void> {
    const cp = this.#opts.checkpoints;
    if (!cp) return;
    try {
      await cp.before({ id, kind: 'task', label: titleOf(prompt), taskId: id });
    } catch (err) {
      const e = CoworkError.from(err, 'unavailable');
      const message = `the workspace checkpoint could not be taken, so the task did not run: ${e.message}`;
      this.#opts.timeline.finishTask(id, { outcome: 'failed', summary: message });
      throw new CoworkError(e.code, message, err);
    }
  }

  /** The task's change set (paths), or undefined when there is no checkpoint to compare with. */
  async #checkpointAfter(id: string): Promise<string[] | undefined> {
    const cp = this.#opts.checkpoints;
    if (!cp) return undefined;
    try {
      return (await cp.after(id, id)).changes.map((c) => c.path);
    } catch (err) {
      const e = CoworkError.from(err);
      this.#opts.timeline.record(id, {
        type: 'error',
        code: e.code,
        message: `no end checkpoint for the task (\`cowork-vm diff ${id}\` compares with the workspace now): ${e.message}`,
        where: 'checkpoints',
      });
      return undefined;
    }
  }

  #resolveKey(override: string | undefined): ReturnType<typeof resolveAnthropicKey> {
    const env = this.#opts.env ?? process.env;
    return resolveAnthropicKey(this.#opts.secrets, { ANTHROPIC_API_KEY: override ?? env.ANTHROPIC_API_KEY });
  }

  #budget(model: string, requested: BudgetLimits | undefined): BudgetTracker {
    // A caller's limits (tasks.start) only tighten the configured budgets.
    const limits = tighterLimits(this.#opts.limits, requested);
    const { pricing } = this.#opts;
    return new BudgetTracker({
      model,
      maxTokens: limits.maxTokens,
      maxCostUsd: limits.maxCostUsd,
      maxIterations: limits.maxIterations,
      pricing,
    });
  }

  /** Runs the loop and records the task's end; resolves (never rejects) when the task is over. */
  #run(
    id: string,
    t: {
      prompt: string;
      model: string;
      key: string;
      budget: BudgetTracker;
      gate: ToolGate;
      signal: AbortSignal;
    },
  ): Promise<AgentResult | undefined> {
    const o = this.#opts;
    const client = new Anthropic({ apiKey: t.key, ...(o.baseURL ? { baseURL: o.baseURL } : {}) });
    // The loop's own `finished` (with the file tools' writes) is held until the end checkpoint
    // gives the real change set, shell side effects included.
    let held: Extract<AgentEvent, { type: 'finished' }> | undefined;
    const onEvent = (e: AgentEvent) => {
      if (e.type === 'finished' && o.checkpoints) held = e;
      else this.#emit(id, e);
    };
    // A microtask later, so the task is registered when extendContext runs: its `wait(id)` then
    // resolves when the task ends (closing the task's browser), not at once.
    return Promise.resolve()
      .then(() =>
        runAgentTask({
          prompt: t.prompt,
          model: t.model,
          client,
          tools: o.tools ?? defaultTools(),
          ctx: o.extendContext ? o.extendContext(t.gate) : t.gate,
          budget: t.budget,
          timeline: o.timeline,
          signal: t.signal,
          maxTokensPerCall: o.maxOutputTokens,
          retry: o.retry,
          onEvent,
        }),
      )
      .then(async (loopResult) => {
        const changed = await this.#checkpointAfter(id);
        const result = changed ? { ...loopResult, filesChanged: changed } : loopResult;
        if (held) this.#emit(id, { type: 'finished', result });
        o.timeline.finishTask(id, { outcome: result.outcome, summary: result.summary });
        return result;
      })
      .catch(async (err: unknown) => {
        const e = CoworkError.from(err);
        await this.#checkpointAfter(id);
        o.timeline.finishTask(id, { outcome: e.code === 'denied' ? 'denied' : 'failed', summary: e.message });
        return undefined;
      })
      .finally(() => {
        this.#tasks.delete(id);
        try {
          o.onTaskEnd?.(id);
        } catch {
          // Disposing per-task state must not turn a finished task into a failed one.
        }
      });
  }

  /**
   * Live events of running tasks (streamed model text, tool calls and results, retries, budget
   * figures) — what a terminal shows as it happens; the timeline is the durable record.
   * Returns an unsubscribe function.
   */
  subscribe(listener: (taskId: string, event: AgentEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(taskId: string, event: AgentEvent): void {
    this.#opts.onEvent?.(taskId, event);
    for (const l of this.#listeners) {
      try {
        l(taskId, event);
      } catch {
        // A broken listener (a closed socket) must not break the task.
      }
    }
  }

  cancel(id: string, origin: Origin): void {
    const t = this.#tasks.get(id);
    if (!t)
      throw new CoworkError('notFound', `task ${id} is not running — list tasks with \`cowork-vm timeline\``);
    t.abort.abort(origin.id);
  }

  running(): number {
    return this.#tasks.size;
  }

  /** Resolves when the task ends (undefined when it failed with an error); for tests and shutdown. */
  async wait(id: string): Promise<AgentResult | undefined> {
    return this.#tasks.get(id)?.done;
  }

  /** Cancels every running task and waits for each to record its end. */
  async dispose(): Promise<void> {
    const all = [...this.#tasks.values()];
    for (const t of all) t.abort.abort('shutdown');
    await Promise.all(all.map((t) => t.done));
  }

  /** The task's side of the controller's path, in the task's origin and under its signal. */
  #gate(controller: EnforcementPath, taskId: string, origin: Origin, signal: AbortSignal): ToolGate {
    const o = this.#opts;
    return enforcementGate(controller, {
      taskId,
      origin,
      signal,
      maxFileSizeMB: o.limits.maxFileSizeMB,
      timeline: o.timeline,
    });
  }
}

/**
 * A ToolGate over the controller's one enforcement path: every decision and command of the
 * gate's tool calls is taken in `origin` and recorded in the task `taskId`. Agent tasks and
 * outside agents' tool sessions (MCP) both get theirs here, so they cannot take different paths.
 */
export function enforcementGate(
  controller: EnforcementPath,
  g: { taskId: string; origin: Origin; signal: AbortSignal; maxFileSizeMB: number; timeline: Timeline },
): ToolGate {
  const { taskId, origin, signal } = g;
  return {
    taskId,
    signal,
    maxFileSizeMB: g.maxFileSizeMB,
    authorize: (req, s) => controller.authorize(req, origin, taskId, s),
    exec: (command, x) =>
      controller.exec(
        { command, cwd: x.cwd, timeoutMs: x.timeoutMs, maxOutputBytes: x.maxOutputBytes, taskId },
        origin,
        { signal: x.signal ?? signal, onStdout: x.onStdout, onStderr: x.onStderr },
      ),
    record: (event: ToolEvent) => g.timeline.record(taskId, event as Parameters<Timeline['record']>[1]),
  };
}

function titleOf(prompt: string): string {
  const line = prompt.trim().split('\n')[0] ?? '';
  return line.length > 80 ? `${line.slice(0, 77)}…` : line || 'agent task';
}
