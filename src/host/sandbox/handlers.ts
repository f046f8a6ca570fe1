import type { z } from 'zod';
import type { ControllerApi, Origin } from '../control/api.js';
import {
  AnswerParams,
  EmptyParams,
  ExecParams,
  TaskEventsParams,
  TaskIdParams,
  TasksListParams,
  TasksStartParams,
  TimelineQueryParams,
} from '../control/local-protocol.js';
import type { LocalHandlers } from '../control/local-server.js';
import { CoworkError } from '../errors.js';

function parse<T extends z.ZodType>(schema: T, params: unknown): z.infer<T> {
  const r = schema.safeParse(params);
  if (!r.success) {
    const first = r.error.issues[0];
    throw new CoworkError(
      'invalidArgument',
      `invalid parameters: ${first?.path.join('.') || '(root)'}: ${first?.message}`,
    );
  }
  return r.data;
}

/**
 * Local-socket methods → ControllerApi. Whoever is on the local socket is the user who started
 * the sandbox (socket mode 0600), so the origin is 'cli' and the context is what they asked for
 * (a stricter one is always allowed).
 */
export function localHandlers(
  api: ControllerApi & { taskEvents?: (l: (taskId: string, event: { type: string }) => void) => () => void },
): LocalHandlers {
  const cli = (context: Origin['context'] = 'local'): Origin => ({ id: 'cli', context });
  return {
    status: async (p) => {
      parse(EmptyParams, p);
      return api.status();
    },
    exec: async (p, ctx) => {
      const req = parse(ExecParams, p);
      return api.exec(
        {
          command: req.command,
          cwd: req.cwd,
          timeoutMs: req.timeoutMs,
          maxOutputBytes: req.maxOutputBytes,
          stdin: req.stdin,
          taskId: req.taskId,
        },
        cli(req.context),
        {
          signal: ctx.signal,
          onStdout: (c) => ctx.stream('stdout', c),
          onStderr: (c) => ctx.stream('stderr', c),
        },
      );
    },
    'approvals.list': async (p) => {
      parse(EmptyParams, p);
      return api.approvalsList();
    },
    'approvals.answer': async (p) => {
      const a = parse(AnswerParams, p);
      api.approvalsAnswer(a.id, { kind: a.kind, message: a.message }, cli());
      return { id: a.id, kind: a.kind };
    },
    'tasks.list': async (p) => api.tasksList(parse(TasksListParams, p)),
    'tasks.get': async (p) => api.tasksGet(parse(TaskIdParams, p).id),
    'tasks.start': async (p) => {
      const req = parse(TasksStartParams, p);
      return api.tasksStart(
        { prompt: req.prompt, model: req.model, apiKeyOverride: req.apiKeyOverride },
        cli(req.context),
      );
    },
    'tasks.cancel': async (p) => {
      const { id } = parse(TaskIdParams, p);
      api.tasksCancel(id, cli());
      return { id };
    },
    'tasks.events': async (p, ctx) => {
      // Optional id: a client can subscribe before it starts a task, so no early text is lost.
      const { id } = parse(TaskEventsParams, p);
      // Only what a terminal needs live: the model's text as it streams.
      const unsubscribe =
        api.taskEvents?.((taskId, event) => {
          if ((id === undefined || taskId === id) && event.type === 'text') ctx.event({ taskId, ...event });
        }) ?? (() => {});
      await new Promise<void>((resolve) =>
        ctx.signal.addEventListener('abort', () => resolve(), { once: true }),
      );
      unsubscribe();
      return null;
    },
    'timeline.query': async (p) => api.timelineQuery(parse(TimelineQueryParams, p)),
    'timeline.subscribe': async (p, ctx) => {
      parse(EmptyParams, p);
      const unsubscribe = api.timelineSubscribe((e) => ctx.event(e));
      await new Promise<void>((resolve) =>
        ctx.signal.addEventListener('abort', () => resolve(), { once: true }),
      );
      unsubscribe();
      return null;
    },
    stop: async (p) => {
      parse(EmptyParams, p);
      await api.stop(cli());
      return { stopping: true };
    },
  };
}
