import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { narrowContext } from '../../src/host/api/bindings.js';
import { METHOD_NAMES, METHODS, methodsOf } from '../../src/host/api/contract.js';
import type { ControllerApi, Origin, TaskStartRequest } from '../../src/host/api/controller.js';
import { PARAM_LIMITS, tighterLimits } from '../../src/host/api/limits.js';
import { LOCAL_METHODS } from '../../src/host/control/local-protocol.js';
import {
  type MethodContext,
  prepareCall,
  METHOD_NAMES as REMOTE_NAMES,
} from '../../src/host/control/methods.js';
import { CoworkError } from '../../src/host/errors.js';
import { localHandlers } from '../../src/host/sandbox/handlers.js';
import { methodRow } from './api-contract-doc.js';

/**
 * The contract is the one table: the transports are derived from it (and agree on every limit),
 * and docs/control-api.md says exactly what it says.
 */

const DOC = readFileSync(new URL('../../docs/control-api.md', import.meta.url), 'utf8');
/** The rows of the table in the doc's "Methods" section: lines that start with a backticked name. */
const METHODS_SECTION = DOC.slice(
  DOC.indexOf('\n## Methods\n'),
  DOC.indexOf('\n## ', DOC.indexOf('\n## Methods\n') + 1),
);
const docRows = METHODS_SECTION.split('\n').filter((l) => /^\| `[^`]+` \|/.test(l));
const docName = (row: string) => /^\| `([^`]+)`/.exec(row)![1]!;

describe('docs/control-api.md', () => {
  it('documents every method of the contract, as the contract has it', () => {
    expect(METHODS_SECTION.length, 'docs/control-api.md has no "## Methods" section').toBeGreaterThan(100);
    for (const m of METHOD_NAMES) {
      const row = docRows.find((r) => docName(r) === m);
      expect(row, `docs/control-api.md has no row for '${m}'; add:\n${methodRow(m)}`).toBeDefined();
      expect(row, `the row for '${m}' differs from the contract; it should read:\n${methodRow(m)}`).toBe(
        methodRow(m),
      );
    }
  });

  it('lists no method that the contract does not have', () => {
    const unknown = docRows.map(docName).filter((m) => !(METHOD_NAMES as string[]).includes(m));
    expect(unknown, 'methods documented but not in src/host/api/contract.ts').toEqual([]);
    expect(docRows).toHaveLength(METHOD_NAMES.length);
  });

  it('states the limits the contract enforces', () => {
    expect(DOC).toContain(`approval message **${PARAM_LIMITS.approvalMessageChars.toLocaleString('en')}**`);
    expect(DOC).toContain(
      `\`timeline.query\` limit **${PARAM_LIMITS.timelineQueryLimit.toLocaleString('en')}**`,
    );
  });
});

describe('transports are derived from the contract', () => {
  it('offer exactly the contract methods of their kind', () => {
    expect([...LOCAL_METHODS]).toEqual(methodsOf('local'));
    expect(REMOTE_NAMES).toEqual(methodsOf('remote'));
    for (const m of METHOD_NAMES) expect(METHODS[m].transports.length).toBeGreaterThan(0);
  });
});

/** A ControllerApi that records what reaches it. */
function recordingApi() {
  const calls: { method: string; args: unknown[] }[] = [];
  const hit =
    (method: string, value: unknown) =>
    (...args: unknown[]) => {
      calls.push({ method, args });
      return value;
    };
  const api = {
    status: hit('status', Promise.resolve({})),
    exec: hit('exec', Promise.resolve({ decision: { effect: 'allow', reasons: [], layer: 'context' } })),
    approvalsList: hit('approvalsList', []),
    approvalsAnswer: hit('approvalsAnswer', undefined),
    tasksList: hit('tasksList', []),
    tasksGet: hit('tasksGet', {}),
    tasksStart: hit('tasksStart', Promise.resolve({ id: 't-1' })),
    tasksCancel: hit('tasksCancel', undefined),
    timelineQuery: hit('timelineQuery', []),
    timelineSubscribe: hit('timelineSubscribe', () => {}),
    stop: hit('stop', Promise.resolve()),
  } as unknown as ControllerApi;
  return { api, calls };
}

function localCtx() {
  return { signal: new AbortController().signal, stream: () => {}, event: () => {} };
}

function remoteCtx(api: ControllerApi): MethodContext {
  return {
    api,
    origin: { id: 'device:d1', context: 'gateway' },
    deviceId: 'd1',
    devices: { list: () => [], revoke: () => {}, createPairingCode: () => ({ code: 'X', expiresAt: 0 }) },
    subscribeTimeline: () => true,
    unsubscribeTimeline: () => true,
    signal: new AbortController().signal,
    emit: () => {},
    requestId: 'r1',
  };
}

/** Outcome of one call on each transport: 'ok' or the error code. */
async function onBoth(
  method: 'approvals.answer' | 'timeline.query' | 'tasks.start' | 'exec',
  params: object,
) {
  const { api, calls } = recordingApi();
  const local = await localHandlers(api)
    [method](params as Record<string, unknown>, localCtx())
    .then(
      () => 'ok',
      (e: unknown) => CoworkError.from(e).code,
    );
  const prepared = prepareCall(method, params, 'admin');
  const remote = prepared.ok
    ? await prepared.run(remoteCtx(api)).then(
        () => 'ok',
        (e: unknown) => CoworkError.from(e).code,
      )
    : prepared.error.code;
  return { local, remote, calls };
}

describe('the transports agree on every limit', () => {
  const msg = (n: number) => ({ id: 'a1', kind: 'deny', message: 'm'.repeat(n) });
  const cases: [string, Parameters<typeof onBoth>[0], object, string][] = [
    ['a 2,000-character approval message', 'approvals.answer', msg(PARAM_LIMITS.approvalMessageChars), 'ok'],
    [
      'a 2,001-character approval message',
      'approvals.answer',
      msg(PARAM_LIMITS.approvalMessageChars + 1),
      'invalidArgument',
    ],
    [
      'a 65-character approval id',
      'approvals.answer',
      { id: 'a'.repeat(65), kind: 'deny' },
      'invalidArgument',
    ],
    ['an unknown verdict', 'approvals.answer', { id: 'a1', kind: 'approve-forever' }, 'invalidArgument'],
    ['1,000 timeline rows', 'timeline.query', { limit: PARAM_LIMITS.timelineQueryLimit }, 'ok'],
    [
      '1,001 timeline rows',
      'timeline.query',
      { limit: PARAM_LIMITS.timelineQueryLimit + 1 },
      'invalidArgument',
    ],
    ['10,000 timeline rows', 'timeline.query', { limit: 10_000 }, 'invalidArgument'],
    ['a negative afterId', 'timeline.query', { afterId: -1 }, 'invalidArgument'],
    [
      'stdin over 1 MiB',
      'exec',
      { command: 'id', stdin: 'x'.repeat(PARAM_LIMITS.stdinChars + 1) },
      'invalidArgument',
    ],
    [
      'an output cap over 64 MiB',
      'exec',
      { command: 'id', maxOutputBytes: PARAM_LIMITS.maxOutputBytes + 1 },
      'invalidArgument',
    ],
    [
      'a command over 100,000 characters',
      'exec',
      { command: 'x'.repeat(PARAM_LIMITS.commandChars + 1) },
      'invalidArgument',
    ],
    [
      'a cwd over 4,096 characters',
      'exec',
      { command: 'id', cwd: '/'.repeat(PARAM_LIMITS.cwdChars + 1) },
      'invalidArgument',
    ],
    ['a negative task budget', 'tasks.start', { prompt: 'p', limits: { maxTokens: -5 } }, 'invalidArgument'],
    [
      'an unknown budget name',
      'tasks.start',
      { prompt: 'p', limits: { maxTokens: 10, extra: 1 } },
      'invalidArgument',
    ],
  ];
  it.each(cases)('%s (%s) → %s on both', async (_what, method, params, expected) => {
    const r = await onBoth(method, params);
    expect({ local: r.local, remote: r.remote }).toEqual({ local: expected, remote: expected });
    if (expected !== 'ok') expect(r.calls).toEqual([]);
  });
});

describe('tasks.start limits', () => {
  const limits = { maxTokens: 1000, maxCostUsd: 0.5, maxIterations: 3 };
  it.each(['local', 'remote'] as const)(
    'reach the ControllerApi over the %s transport',
    async (transport) => {
      const { api, calls } = recordingApi();
      if (transport === 'local') await localHandlers(api)['tasks.start']({ prompt: 'p', limits }, localCtx());
      else {
        const call = prepareCall('tasks.start', { prompt: 'p', limits }, 'operator');
        if (!call.ok) throw call.error;
        await call.run(remoteCtx(api));
      }
      const [req, origin] = calls[0]!.args as [TaskStartRequest, Origin];
      expect(req.limits).toEqual(limits);
      expect(origin.context).toBe(transport === 'local' ? 'agent' : 'gateway');
    },
  );

  it('only tighten the configured budgets', () => {
    expect(
      tighterLimits({ maxTokens: 100, maxCostUsd: 1 }, { maxTokens: 1_000_000, maxIterations: 4 }),
    ).toEqual({
      maxTokens: 100,
      maxCostUsd: 1,
      maxIterations: 4,
    });
    expect(tighterLimits({ maxTokens: 100 }, { maxTokens: 10 })).toEqual({ maxTokens: 10 });
    expect(tighterLimits({ maxCostUsd: 2 }, undefined)).toEqual({ maxCostUsd: 2 });
  });
});

describe('owner-only params', () => {
  it('the owner may ask for any context; a remote caller cannot send one at all', async () => {
    const { api, calls } = recordingApi();
    await localHandlers(api).exec({ command: 'id', context: 'agent' }, localCtx());
    expect(calls[0]!.args[1]).toEqual({ id: 'cli', context: 'agent' });
    for (const context of ['local', 'agent', 'gateway']) {
      const call = prepareCall('exec', { command: 'id', context }, 'admin');
      expect(call).toMatchObject({ ok: false, protocol: true, error: { code: 'invalidArgument' } });
    }
    const key = prepareCall('tasks.start', { prompt: 'p', apiKeyOverride: 'sk-stolen' }, 'admin');
    expect(key).toMatchObject({ ok: false, error: { code: 'invalidArgument' } });
  });

  it('no binding lets a caller loosen its context', () => {
    const gateway: Origin = { id: 'device:d', context: 'gateway' };
    expect(() => narrowContext(gateway, 'local')).toThrow(/cannot ask for 'local'/);
    expect(() => narrowContext(gateway, 'agent')).toThrow(CoworkError);
    expect(() => narrowContext({ id: 'task:t', context: 'agent' }, 'local')).toThrow(
      /allowed: agent, gateway/,
    );
    expect(narrowContext(gateway, 'gateway')).toBe(gateway);
    expect(narrowContext({ id: 'cli', context: 'local' }, 'gateway')).toEqual({
      id: 'cli',
      context: 'gateway',
    });
  });
});

describe('tasks.events on the local socket', () => {
  it("forwards a task's text and result, only of the task asked for, until cancelled", async () => {
    const listeners: ((taskId: string, e: { type: string; [k: string]: unknown }) => void)[] = [];
    const { api } = recordingApi();
    api.taskEvents = (l) => {
      listeners.push(l);
      return () => listeners.splice(listeners.indexOf(l), 1);
    };
    const ac = new AbortController();
    const events: unknown[] = [];
    const done = localHandlers(api)['tasks.events'](
      { id: 't-1' },
      { signal: ac.signal, stream: () => {}, event: (e) => events.push(e) },
    );
    await new Promise((r) => setImmediate(r));
    const emit = (taskId: string, e: { type: string; [k: string]: unknown }) => {
      for (const l of listeners) l(taskId, e);
    };
    emit('t-1', { type: 'text', text: 'hello' });
    emit('t-2', { type: 'text', text: 'not this task' });
    emit('t-1', { type: 'tool.call', name: 'shell' });
    emit('t-1', { type: 'finished', result: { outcome: 'completed', filesChanged: ['a.txt'], usage: {} } });
    ac.abort();
    await expect(done).resolves.toBeNull();
    expect(listeners).toHaveLength(0);
    expect(events).toEqual([
      { taskId: 't-1', type: 'text', text: 'hello' },
      { taskId: 't-1', type: 'finished', outcome: 'completed', filesChanged: ['a.txt'] },
    ]);
  });
});
