import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Origin } from '../../src/host/api/controller.js';
import { MemoryApprovalBroker } from '../../src/host/approvals/index.js';
import { defaultConfig } from '../../src/host/config/index.js';
import { createPolicyEngine } from '../../src/host/policy/index.js';
import type { PolicyEngine } from '../../src/host/policy/types.js';
import { Controller } from '../../src/host/sandbox/controller.js';
import type { Sandbox } from '../../src/host/sandbox/sandbox.js';
import { TaskScopes } from '../../src/host/sandbox/task-scope.js';
import type { ExecResult } from '../../src/host/ssh/types.js';
import { Timeline } from '../../src/host/timeline/index.js';
import { waitFor } from '../helpers/wait.js';
import { execResult } from './agent-test-context.js';

/**
 * The controller is the one enforcement point. The Sandbox is the seam here (the real-guest
 * variants live in tests/integration): this records what would have reached the guest.
 */
function fakeSandbox(ran: string[]): Sandbox {
  return {
    info: { accel: 'tcg', share: '9p', image: 'base', imageHash: 'h', bootMs: 1, startedAt: '' },
    exec: async (command: string): Promise<ExecResult> => {
      ran.push(command);
      return execResult({ stdout: 'ok\n' });
    },
  } as unknown as Sandbox;
}

const agent: Origin = { id: 'test', context: 'agent' };
const local: Origin = { id: 'test', context: 'local' };

describe('Controller enforcement path', () => {
  let ran: string[];
  let timeline: Timeline;
  let broker: MemoryApprovalBroker;
  let controller: Controller;
  let scopes: TaskScopes;

  function build(policy: PolicyEngine = createPolicyEngine(defaultConfig())) {
    controller = new Controller({
      workspace: mkdtempSync(join(tmpdir(), 'ctl-ws-')),
      stateDir: mkdtempSync(join(tmpdir(), 'ctl-st-')),
      sandbox: fakeSandbox(ran),
      policy,
      approvals: broker,
      timeline,
      approvalTimeoutMs: 60_000,
      vmSpec: { driver: 'qemu', cpus: 1, memoryMiB: 512 },
      scopes,
    });
  }

  /** Waits until the controller holds a pending approval (the command is waiting for an answer). */
  const untilAsked = () => waitFor(() => controller.approvalsList().length > 0, 'a pending approval');

  beforeEach(() => {
    ran = [];
    scopes = new TaskScopes();
    timeline = Timeline.open(join(mkdtempSync(join(tmpdir(), 'ctl-tl-')), 'timeline.db'));
    broker = new MemoryApprovalBroker({ timeline });
    build();
  });
  afterEach(() => timeline.close());

  it('a denied command never reaches the guest and is recorded', async () => {
    const out = await controller.exec({ command: 'ls; sudo rm -rf /' }, local);
    expect(out.result).toBeUndefined();
    expect(out.decision.effect).toBe('deny');
    expect(ran).toEqual([]);
    const types = timeline.query({}).map((e) => e.type);
    expect(types).toEqual(['command.requested', 'policy.decision']);
  });

  it('an asked command waits for an answer; deny keeps it out of the guest with the message', async () => {
    const pending = controller.exec({ command: 'touch x' }, agent);
    await untilAsked();
    const [p] = controller.approvalsList();
    expect(p?.command).toBe('touch x');
    controller.approvalsAnswer(p!.id, { kind: 'deny', message: 'not now' }, { id: 'cli', context: 'local' });
    const out = await pending;
    expect(out.result).toBeUndefined();
    expect(out.deniedReason).toContain('not now');
    expect(ran).toEqual([]);
  });

  it('approve-task lets the exact same command through later in the task, and nothing else', async () => {
    const t1 = timeline.createTask({ title: 'a', context: 'agent', origin: 'test' }).id;
    const t2 = timeline.createTask({ title: 'b', context: 'agent', origin: 'test' }).id;
    scopes.open(t1);
    scopes.open(t2);
    const first = controller.exec({ command: 'make build', taskId: t1 }, agent);
    await untilAsked();
    controller.approvalsAnswer(
      controller.approvalsList()[0]!.id,
      { kind: 'approve-task' },
      { id: 'cli', context: 'local' },
    );
    expect((await first).result?.exitCode).toBe(0);
    // Same command, same task: no new approval.
    expect((await controller.exec({ command: 'make build', taskId: t1 }, agent)).result?.exitCode).toBe(0);
    // Another task, or another command: asked again.
    const other = controller.exec({ command: 'make build', taskId: t2 }, agent);
    await untilAsked();
    expect(controller.approvalsList()).toHaveLength(1);
    controller.approvalsAnswer(
      controller.approvalsList()[0]!.id,
      { kind: 'deny' },
      { id: 'cli', context: 'local' },
    );
    expect((await other).result).toBeUndefined();
    expect(ran).toEqual(['make build', 'make build']);
  });

  it('approve-task never turns a deny into an allow', async () => {
    const t1 = timeline.createTask({ title: 'a', context: 'agent', origin: 'test' }).id;
    scopes.open(t1);
    const first = controller.exec({ command: 'make build', taskId: t1 }, agent);
    await untilAsked();
    controller.approvalsAnswer(
      controller.approvalsList()[0]!.id,
      { kind: 'approve-task' },
      { id: 'cli', context: 'local' },
    );
    await first;
    const out = await controller.exec({ command: 'make build && sudo id', taskId: t1 }, agent);
    expect(out.decision.effect).toBe('deny');
    expect(ran).toEqual(['make build']);
  });

  it('fails closed when the policy engine throws', async () => {
    build({
      evaluate: () => {
        throw new Error('boom');
      },
    });
    const out = await controller.exec({ command: 'ls' }, local);
    expect(out.decision.effect).toBe('deny');
    expect(out.deniedReason).toMatch(/policy could not decide: boom/);
    expect(ran).toEqual([]);
  });

  it('an approval timeout denies', async () => {
    controller = new Controller({
      workspace: mkdtempSync(join(tmpdir(), 'ctl-ws-')),
      stateDir: mkdtempSync(join(tmpdir(), 'ctl-st-')),
      sandbox: fakeSandbox(ran),
      policy: createPolicyEngine(defaultConfig()),
      approvals: broker,
      timeline,
      approvalTimeoutMs: 50,
      vmSpec: { driver: 'qemu', cpus: 1, memoryMiB: 512 },
    });
    const out = await controller.exec({ command: 'touch y' }, agent);
    expect(out.result).toBeUndefined();
    expect(out.deniedReason).toMatch(/timeout/);
    expect(ran).toEqual([]);
  });

  it('refuses work once the VM has crashed', async () => {
    controller.markState('crashed');
    await expect(controller.exec({ command: 'true' }, local)).rejects.toThrow(/crashed/);
    expect(ran).toEqual([]);
  });
  it('policy.check: the same decision exec would take, with nothing recorded, asked or run', async () => {
    const before = timeline.query({}).length;
    const gateway: Origin = { id: 'dashboard:d1', context: 'gateway' };
    const asked = controller.policyCheck({ command: 'touch /workspace/x' }, agent);
    expect(asked).toMatchObject({ verdict: 'ask', context: 'agent' });
    expect(asked.reasons.length).toBeGreaterThan(0);
    expect(controller.policyCheck({ command: 'echo ok && sudo id' }, gateway)).toMatchObject({
      verdict: 'deny',
      rule: expect.stringContaining('sudo'),
      context: 'gateway',
    });
    expect(timeline.query({}).length).toBe(before);
    expect(controller.approvalsList()).toEqual([]);
    expect(ran).toEqual([]);
    // Same engine, same answer as the enforcement path.
    const out = await controller.exec({ command: 'echo ok && sudo id' }, gateway);
    expect(out.decision.effect).toBe('deny');
  });

  it('policy.check fails closed when the policy engine throws', () => {
    build({
      evaluate: () => {
        throw new Error('broken rules');
      },
    });
    expect(controller.policyCheck({ command: 'ls' }, local)).toMatchObject({
      verdict: 'deny',
      reasons: ['policy could not decide: broken rules'],
    });
  });

  it('dashboard.login is refused clearly while the dashboard is off', async () => {
    expect(() => controller.dashboardLogin({}, { id: 'cli', context: 'local' })).toThrow(
      /dashboard is off \(\[dashboard\] enabled = false/,
    );
    expect((await controller.status()).dashboard).toBeUndefined();
    controller.setDashboard({ url: 'http://127.0.0.1:1/', login: () => ({ url: 'u', expiresAt: 1 }) });
    expect((await controller.status()).dashboard).toEqual({ url: 'http://127.0.0.1:1/' });
    expect(controller.dashboardLogin({}, { id: 'cli', context: 'local' })).toEqual({
      url: 'u',
      expiresAt: 1,
    });
  });
});
