import { z } from 'zod';
import { type EnforcementPath, enforcementGate } from '../agent/task-runner.js';
import type {
  Origin,
  ToolCallOutcome,
  ToolCallRequest,
  ToolCallStreams,
  ToolClient,
  ToolInfo,
  ToolSessionInfo,
} from '../api/controller.js';
import type { TaskCheckpoints } from '../checkpoints/index.js';
import { CoworkError } from '../errors.js';
import type { StoredEvent, Timeline } from '../timeline/index.js';
import { runToolCall } from '../tools/call.js';
import { ToolRegistry } from '../tools/registry.js';
import type { AnyTool, ToolGate, ToolResult } from '../tools/types.js';
import { budgetText, type CallFacts, deniedAdvice, failureText } from './advice.js';
import { mcpOrigin, outsideAgentTools, toolListing } from './tool-list.js';

export interface ToolSessionsOptions {
  /** May be attached later with `attach()` (the Controller takes the sessions in its constructor). */
  controller?: EnforcementPath;
  timeline: Timeline;
  /** The sandbox's tool set (the agent's: browser tools with the browser image); task_complete is left out. */
  tools: AnyTool[];
  maxFileSizeMB: number;
  /** `[mcp]` budgets of one session. */
  limits: { maxCalls: number; maxSessionMinutes: number };
  /** What agent tasks' gates get too: the task's scope (approvals "for the task", proxy credentials), the browser. */
  extendContext?: (base: ToolGate) => ToolGate;
  /**
   * The workspace checkpoint around a session, as around an agent task: taken before its first
   * call (no checkpoint, no call), its change set recorded when the session ends — so
   * `cowork-vm diff`/`undo` work on an outside agent's session as on a task.
   */
  checkpoints?: Pick<TaskCheckpoints, 'before' | 'after'>;
  /** Called once when a session ends, with its task id: where its scope and browser are disposed. */
  onSessionEnd?: (taskId: string) => void;
  now?: () => number;
}

interface Session {
  info: ToolSessionInfo;
  gate: ToolGate;
  abort: AbortController;
  startedAt: number;
  calls: number;
  /** The session's checkpoint, once its first call asked for it. */
  checkpoint?: Promise<unknown>;
}

/**
 * Tool sessions of outside agents (MCP clients), inside the controller. A session is one
 * timeline task, created when the client connects and finished when it goes; every call is
 * recorded in it (tool.call, the decision, the approval, the command, tool.result) and runs
 * through the same ToolGate an agent task's tools get — `enforcementGate` over the Controller,
 * origin `mcp:<client>@<version>`, policy context `agent` — so an outside agent can do nothing
 * our own agent could not, and is asked for the same things.
 */
export class ToolSessions {
  readonly #opts: ToolSessionsOptions;
  readonly #registry: ToolRegistry;
  readonly #sessions = new Map<string, Session>();
  #controller: EnforcementPath | undefined;

  constructor(opts: ToolSessionsOptions) {
    this.#opts = opts;
    this.#controller = opts.controller;
    this.#registry = new ToolRegistry(outsideAgentTools(opts.tools));
  }

  attach(controller: EnforcementPath): this {
    this.#controller = controller;
    return this;
  }

  list(): ToolInfo[] {
    return toolListing(this.#opts.tools);
  }

  open(client: ToolClient): ToolSessionInfo {
    const controller = this.#controller;
    if (!controller) throw new CoworkError('internal', 'tool sessions are not attached to a controller');
    const o = this.#opts;
    const origin: Origin = { id: mcpOrigin(client), context: 'agent' };
    const taskId = o.timeline.createTask({
      title: `MCP session (${origin.id})`,
      context: 'agent',
      origin: origin.id,
    }).id;
    const abort = new AbortController();
    const base = enforcementGate(controller, {
      taskId,
      origin,
      signal: abort.signal,
      maxFileSizeMB: o.maxFileSizeMB,
      timeline: o.timeline,
    });
    const gate = o.extendContext ? o.extendContext(base) : base;
    const info: ToolSessionInfo = { session: taskId, taskId, origin: origin.id, ...o.limits };
    this.#sessions.set(taskId, { info, gate, abort, startedAt: this.#now(), calls: 0 });
    return info;
  }

  /** Ends a session: running calls are aborted, its task finishes, its scope goes. Idempotent. */
  close(session: string, summary = 'the MCP client disconnected'): void {
    const s = this.#sessions.get(session);
    if (!s) return;
    this.#sessions.delete(session);
    s.abort.abort('session closed');
    const finish = () => {
      try {
        this.#opts.timeline.finishTask(s.info.taskId, {
          outcome: 'completed',
          summary: `${summary}; ${s.calls} tool call(s)`,
        });
      } catch {
        // The timeline may already be closed at shutdown; the session still ends.
      }
    };
    const cp = this.#opts.checkpoints;
    if (cp && s.checkpoint) {
      // The change set goes into the task before it finishes; a failure leaves the start
      // checkpoint, which `cowork-vm diff` compares with the workspace as it is then.
      const id = s.info.taskId;
      void s.checkpoint
        .then(() => cp.after(id, id))
        .catch(() => undefined)
        .finally(finish);
    } else finish();
    try {
      this.#opts.onSessionEnd?.(s.info.taskId);
    } catch {
      // Disposing a browser or scope must not keep the session open.
    }
  }

  dispose(): void {
    for (const id of [...this.#sessions.keys()]) this.close(id, 'the sandbox stopped');
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** One call: budgets, the tool's own input schema, then runToolCall on the session's gate. */
  async call(req: ToolCallRequest, opts: ToolCallStreams = {}): Promise<ToolCallOutcome> {
    const s = this.#sessions.get(req.session);
    if (!s)
      throw new CoworkError(
        'notFound',
        `no open tool session ${req.session} — it has ended; reconnect the client`,
      );
    const refused = this.#overBudget(s);
    if (refused) return refused;
    s.calls++;
    const tool = this.#registry.get(req.tool);
    if (!tool) {
      const names = this.#registry.names().join(', ');
      return { text: `There is no tool "${req.tool}". Available: ${names}.`, isError: true, denied: false };
    }
    const parsed = tool.input.safeParse(req.input ?? {});
    if (!parsed.success) {
      const text = `Invalid input for ${tool.name}:\n${z.prettifyError(parsed.error)}`;
      return { text, isError: true, denied: false };
    }
    const unrecorded = await this.#checkpoint(s);
    if (unrecorded) return unrecorded;
    const toolUseId = `mcp-${s.calls}`;
    const { timeline } = this.#opts;
    timeline.record(s.info.taskId, {
      type: 'tool.call',
      toolUseId,
      name: tool.name,
      inputExcerpt: JSON.stringify(parsed.data),
    });
    const result = await this.#run(s, tool, parsed.data, opts);
    timeline.record(s.info.taskId, {
      type: 'tool.result',
      toolUseId,
      name: tool.name,
      isError: result.isError,
      outputBytes: Buffer.byteLength(result.text),
      outputExcerpt: result.text,
    });
    return result;
  }

  async #run(s: Session, tool: AnyTool, input: unknown, opts: ToolCallStreams): Promise<ToolCallOutcome> {
    const remainingMs = s.startedAt + s.info.maxSessionMinutes * 60_000 - this.#now();
    const outOfTime = AbortSignal.timeout(Math.max(1, remainingMs));
    const signals = [s.abort.signal, outOfTime, ...(opts.signal ? [opts.signal] : [])];
    const signal = AbortSignal.any(signals);
    const command =
      tool.name === 'shell' && input && typeof input === 'object'
        ? String((input as { command: unknown }).command)
        : undefined;
    const facts: CallFacts = { tool: tool.name, command };
    const unwatch = this.#watch(s.info.taskId, facts, opts);
    let result: ToolResult;
    try {
      result = await runToolCall(tool, input, s.gate, signal);
    } catch (err) {
      if (outOfTime.aborted && !opts.signal?.aborted)
        return { text: budgetText('time', s.info.maxSessionMinutes), isError: true, denied: true };
      result = { content: failureText(CoworkError.from(err), tool.name), isError: true };
    } finally {
      unwatch();
    }
    const text = result.denied ? `${result.content}\n${deniedAdvice(facts)}` : result.content;
    return { text, isError: result.isError === true, denied: result.denied === true };
  }

  /**
   * Follows the session's timeline while a call runs: the decision and the approval go into the
   * advice, and an approval asked is passed on at once (the client shows whom to ask).
   * Concurrent calls of one session share the task, so under concurrency the attribution is
   * best-effort; the decision itself never depends on it.
   */
  #watch(taskId: string, facts: CallFacts, opts: ToolCallStreams): () => void {
    return this.#opts.timeline.subscribe((raw) => {
      const e = raw as StoredEvent;
      if (e.taskId !== taskId) return;
      if (e.type === 'policy.decision') facts.decision = e.data;
      else if (e.type === 'approval.asked') {
        facts.approval = { id: e.data.id };
        opts.onApproval?.({ id: e.data.id, reasons: e.data.reasons });
      } else if (e.type === 'approval.timedout') facts.approval = { id: e.data.id, timedOut: true };
      else if (e.type === 'approval.answered' && e.data.verdict === 'deny')
        facts.approval = { id: e.data.id, deniedBy: e.data.by, message: e.data.message };
    });
  }

  /** Fail closed: the first call of a session waits for its checkpoint; none, no call. */
  async #checkpoint(s: Session): Promise<ToolCallOutcome | undefined> {
    const cp = this.#opts.checkpoints;
    if (!cp) return undefined;
    const id = s.info.taskId;
    s.checkpoint ??= cp.before({ id, kind: 'task', label: `MCP session (${s.info.origin})`, taskId: id });
    try {
      await s.checkpoint;
      return undefined;
    } catch (err) {
      s.checkpoint = undefined; // the next call tries again
      const text = `The workspace checkpoint could not be taken, so the call did not run: ${CoworkError.from(err).message}`;
      this.#opts.timeline.record(id, {
        type: 'error',
        code: 'unavailable',
        message: text,
        where: 'checkpoints',
      });
      return { text, isError: true, denied: false };
    }
  }

  #overBudget(s: Session): ToolCallOutcome | undefined {
    const { maxCalls, maxSessionMinutes } = s.info;
    let text: string | undefined;
    if (s.calls >= maxCalls) text = budgetText('calls', maxCalls);
    else if (this.#now() - s.startedAt >= maxSessionMinutes * 60_000)
      text = budgetText('time', maxSessionMinutes);
    if (!text) return undefined;
    this.#opts.timeline.record(s.info.taskId, {
      type: 'error',
      code: 'limitExceeded',
      message: text,
      where: 'mcp',
    });
    return { text, isError: true, denied: true };
  }

  #now(): number {
    return (this.#opts.now ?? Date.now)();
  }
}
