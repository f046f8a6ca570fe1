import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentTaskRunner } from '../../src/host/agent/index.js';
import type { Origin } from '../../src/host/api/controller.js';
import { MemoryApprovalBroker } from '../../src/host/approvals/index.js';
import { defaultConfig } from '../../src/host/config/index.js';
import { createPolicyEngine } from '../../src/host/policy/index.js';
import { Controller } from '../../src/host/sandbox/controller.js';
import type { Sandbox } from '../../src/host/sandbox/sandbox.js';
import type { SecretStore } from '../../src/host/secrets/index.js';
import { Timeline } from '../../src/host/timeline/index.js';
import { BROWSER_TOOLS } from '../../src/host/tools/browser.js';
import { defaultTools } from '../../src/host/tools/index.js';
import { AnthropicApiStandIn, reply, toolUse } from '../helpers/anthropic-api.js';
import { MemoryGuestSession, stubTaskBrowser, TINY_PNG } from './agent-test-context.js';

/**
 * One decision per tool call, on the production path: the real Controller (policy engine,
 * approval broker, timeline), the real task runner and loop, the real SDK against the local
 * Messages API stand-in. Only the guest (in memory) and the browser's page (a stub) stand in;
 * tests/e2e/browser.test.ts repeats the browser half with the real Chromium in a real guest.
 */

const KEY = 'sk-ant-api03-decisions-unit-KEY-2b7e';
const cli: Origin = { id: 'cli', context: 'local' };

const store: SecretStore = {
  get: async (n) => (n === 'anthropic' ? KEY : undefined),
  set: async () => {},
  remove: async () => false,
  list: async () => ['anthropic'],
};

let dirs: string[];
let timeline: Timeline;
let api: AnthropicApiStandIn;
let broker: MemoryApprovalBroker;
let guest: MemoryGuestSession;

beforeEach(async () => {
  dirs = [mkdtempSync(join(tmpdir(), 'decisions-ws-')), mkdtempSync(join(tmpdir(), 'decisions-st-'))];
  timeline = Timeline.open(join(dirs[1]!, 'timeline.db'));
  api = await AnthropicApiStandIn.start({ apiKey: KEY });
  broker = new MemoryApprovalBroker({ timeline });
  // Whoever is asked approves once, as a user at the terminal would.
  broker.on('pending', (p) =>
    queueMicrotask(() => broker.answer(p.id, { kind: 'approve-once', by: 'test' })),
  );
  guest = new MemoryGuestSession();
});
afterEach(async () => {
  timeline.close();
  await api.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function controllerAndRunner() {
  const config = defaultConfig();
  config.egress.allow = ['site.test'];
  const sandbox = {
    info: { accel: 'tcg', share: '9p', image: 'browser', imageHash: 'h', bootMs: 1, startedAt: '' },
    session: guest,
    exec: (command: string, opts: object) => guest.exec(command, opts),
  } as unknown as Sandbox;
  const browser = stubTaskBrowser();
  const runner = new AgentTaskRunner({
    timeline,
    secrets: store,
    limits: { maxFileSizeMB: 1 },
    model: 'claude-sonnet-4-5',
    baseURL: api.baseURL,
    env: {},
    tools: [...defaultTools(), ...BROWSER_TOOLS],
    extendContext: (base) => ({ ...base, browser }),
  });
  const controller = new Controller({
    workspace: dirs[0]!,
    stateDir: dirs[1]!,
    sandbox,
    policy: createPolicyEngine(config),
    approvals: broker,
    timeline,
    approvalTimeoutMs: 60_000,
    vmSpec: { driver: 'qemu', cpus: 1, memoryMiB: 512 },
    tasks: runner,
  });
  runner.attach(controller);
  return { controller, runner, browser };
}

/** policy.decision and approval.asked events between each tool.call and the next, by tool_use id. */
function perToolCall(taskId: string) {
  const counts = new Map<string, { name: string; decisions: number; approvals: number }>();
  let current: { name: string; decisions: number; approvals: number } | undefined;
  for (const e of timeline.query({ taskId })) {
    const data = e.data as { toolUseId?: string; name?: string };
    if (e.type === 'tool.call') {
      current = { name: data.name ?? '', decisions: 0, approvals: 0 };
      counts.set(data.toolUseId ?? '', current);
    } else if (e.type === 'tool.result') current = undefined;
    else if (current && e.type === 'policy.decision') current.decisions++;
    else if (current && e.type === 'approval.asked') current.approvals++;
  }
  return counts;
}

describe('one decision per tool call', () => {
  it('every tool, the browser tools included, gets exactly one policy decision and at most one approval', async () => {
    guest.files.set('/workspace/one.txt', Buffer.from('alpha\n'));
    const { runner, browser } = controllerAndRunner();
    const calls: [string, Record<string, unknown>][] = [
      ['read_file', { path: 'one.txt' }],
      ['write_file', { path: 'deep/two.txt', content: 'beta\n' }],
      ['edit_file', { path: 'one.txt', old_string: 'alpha', new_string: 'gamma' }],
      ['list_directory', { path: '.' }],
      ['search_files', { pattern: 'gamma' }],
      ['shell', { command: 'rm -rf build' }],
      ['browser_snapshot', {}], // on about:blank: asks
      ['browser_navigate', { url: 'http://site.test/' }],
      ['browser_snapshot', {}],
      ['browser_click', { text: 'Go' }],
      ['browser_type', { selector: '#name', text: 'Ada' }],
      ['browser_screenshot', { path: 'shots/page.png' }],
      ['browser_back', {}],
      ['browser_downloads', {}],
    ];
    api.enqueue(
      ...calls.map(([name, input], i) => reply([toolUse(name, input, `toolu_${i}`)])),
      reply([toolUse('task_complete', { summary: 'used every tool' }, 'toolu_done')]),
    );
    const { id } = await runner.start({ prompt: 'use every tool once' }, cli);
    await runner.wait(id);
    expect(timeline.getTask(id)).toMatchObject({ status: 'completed', summary: 'used every tool' });

    const failed = timeline
      .query({ taskId: id, types: ['tool.result'] })
      .map((e) => e.data as { name: string; isError: boolean; outputExcerpt: string })
      .filter((r) => r.isError);
    expect(failed).toEqual([]);
    const counts = perToolCall(id);
    calls.forEach(([name], i) => {
      const c = counts.get(`toolu_${i}`);
      expect(c?.name).toBe(name);
      expect(c?.decisions, `${name} (call ${i})`).toBe(1);
      expect(c?.approvals, `${name} (call ${i})`).toBeLessThanOrEqual(1);
    });
    expect(counts.get('toolu_done')).toMatchObject({ decisions: 0, approvals: 0 });
    // The calls that ask did ask once (so the count above is not vacuous).
    expect(counts.get('toolu_5')?.approvals).toBe(1);
    expect(counts.get('toolu_6')?.approvals).toBe(1);
    // On an allowed page the screenshot is judged by the page and its file in one go: no prompt.
    expect(counts.get('toolu_11')?.approvals).toBe(0);
    expect(guest.files.get('/workspace/shots/page.png')).toEqual(TINY_PNG);
    expect(guest.files.get('/workspace/one.txt')?.toString()).toBe('gamma\n');
    expect(guest.files.get('/workspace/deep/two.txt')?.toString()).toBe('beta\n');
    expect(browser.opened).toEqual(['http://site.test/']);
    // Every decision of the task belongs to one of its tool calls.
    const decisions = timeline.query({ taskId: id, types: ['policy.decision'] });
    expect(decisions).toHaveLength(calls.length);
  });

  it('a screenshot whose file a rule denies is denied by its one decision, and nothing is written', async () => {
    const { runner, browser } = controllerAndRunner();
    await browser.browser().then((b) => b.page().then((p) => p.goto('http://site.test/')));
    api.enqueue(
      reply([toolUse('browser_screenshot', { path: '.git/hooks/x.png' }, 'toolu_shot')]),
      reply([toolUse('task_complete', { summary: 'done' }, 'toolu_done')]),
    );
    const { id } = await runner.start({ prompt: 'shoot' }, cli);
    await runner.wait(id);
    expect(perToolCall(id).get('toolu_shot')).toMatchObject({ decisions: 1, approvals: 0 });
    const [d] = timeline.query({ taskId: id, types: ['policy.decision'] });
    expect(d?.data).toMatchObject({ tool: 'browser_screenshot', effect: 'deny' });
    expect([...guest.files.keys()]).toEqual([]);
    expect(guest.execs).toEqual([]);
  });
});
