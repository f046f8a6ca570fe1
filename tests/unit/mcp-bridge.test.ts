import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/host/api/client.js';
import { MemoryApprovalBroker } from '../../src/host/approvals/index.js';
import { LocalControlClient } from '../../src/host/control/local-client.js';
import { LocalControlServer } from '../../src/host/control/local-server.js';
import { CoworkError } from '../../src/host/errors.js';
import { McpBridge, ToolSessions, toolListing } from '../../src/host/mcp/index.js';
import { createPolicyEngine } from '../../src/host/policy/index.js';
import { Controller } from '../../src/host/sandbox/controller.js';
import { localHandlers } from '../../src/host/sandbox/handlers.js';
import type { Sandbox } from '../../src/host/sandbox/sandbox.js';
import type { ExecOptions, ExecResult } from '../../src/host/ssh/types.js';
import { Timeline } from '../../src/host/timeline/index.js';
import { defaultTools } from '../../src/host/tools/index.js';
import { waitFor } from '../helpers/wait.js';
import { execResult } from './agent-test-context.js';

/**
 * `cowork-vm mcp` in one process: the SDK's own Client, the McpBridge, the real local control
 * socket, the real Controller with its policy engine and approval broker, and the ToolSessions.
 * Only the guest is a seam (it records commands; `sleep` waits for its abort signal). The
 * real-guest version is tests/integration/mcp-server.test.ts.
 */

function fakeSandbox(ran: string[], aborted: string[]): Sandbox {
  return {
    info: { accel: 'tcg', share: '9p', image: 'base', imageHash: 'h', bootMs: 1, startedAt: '' },
    exec: (command: string, opts: ExecOptions = {}): Promise<ExecResult> => {
      ran.push(command);
      if (!command.startsWith('sleep')) return Promise.resolve(execResult({ stdout: `ran ${command}\n` }));
      return new Promise((_resolve, reject) => {
        opts.signal?.addEventListener('abort', () => {
          aborted.push(command);
          reject(new CoworkError('cancelled', 'the command was cancelled'));
        });
      });
    },
  } as unknown as Sandbox;
}

describe('cowork-vm mcp bridge (SDK client ↔ controller)', () => {
  let dir: string;
  let timeline: Timeline;
  let controller: Controller;
  let server: LocalControlServer;
  let bridge: McpBridge;
  let client: Client;
  let ran: string[];
  let aborted: string[];
  const logs: string[] = [];

  async function build(limits = { maxCalls: 50, maxSessionMinutes: 60 }) {
    const workspace = mkdtempSync(join(dir, 'ws-'));
    const broker = new MemoryApprovalBroker({ timeline });
    const sessions = new ToolSessions({ timeline, tools: defaultTools(), maxFileSizeMB: 10, limits });
    controller = new Controller({
      workspace,
      stateDir: dir,
      sandbox: fakeSandbox(ran, aborted),
      policy: createPolicyEngine({
        policy: { allow: ['Bash(echo:*)', 'Bash(sleep:*)'], deny: ['Bash(curl:*)'] },
      }),
      approvals: broker,
      timeline,
      approvalTimeoutMs: 60_000,
      vmSpec: { driver: 'qemu', cpus: 1, memoryMiB: 512 },
      toolSessions: sessions,
    });
    sessions.attach(controller);
    const sock = join(dir, `c${Math.random().toString(36).slice(2, 8)}.sock`);
    server = new LocalControlServer(sock, localHandlers(controller));
    await server.listen();
    bridge = new McpBridge({
      attach: async () => new ApiClient<'local'>(await LocalControlClient.connect(sock, workspace)),
      version: 'test',
      log: (l) => logs.push(l),
      progressIntervalMs: 100,
    });
    client = new Client({ name: 'unit-client', version: '9.9' });
    const [a, b] = InMemoryTransport.createLinkedPair();
    await bridge.server.connect(a);
    await client.connect(b);
  }

  const text = (r: unknown) => ((r as CallToolResult).content[0] as { text: string }).text;
  const sessionTask = () => controller.tasksList().find((t) => t.origin === 'mcp:unit-client@9.9');

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-bridge-'));
    timeline = Timeline.open(join(dir, 'timeline.db'));
    ran = [];
    aborted = [];
    logs.length = 0;
  });
  afterEach(async () => {
    await client?.close();
    await bridge?.close();
    await server?.close();
    timeline.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists the controller’s tools with their zod-derived schemas', async () => {
    await build();
    const { tools } = await client.listTools();
    expect(
      tools.map((t) => ({ name: t.name, description: t.description, inputSchema: t.inputSchema })),
    ).toEqual(toolListing(defaultTools()));
  });

  it('lists tools at once while the sandbox is still starting, and starts attaching', async () => {
    let attaching = 0;
    bridge = new McpBridge({
      attach: () => {
        attaching++;
        return new Promise(() => {}); // a sandbox that is still booting
      },
      version: 'test',
      log: () => {},
      toolsBeforeReady: () => toolListing(defaultTools()),
    });
    client = new Client({ name: 'unit-client', version: '9.9' });
    const [a, b] = InMemoryTransport.createLinkedPair();
    await bridge.server.connect(a);
    await client.connect(b);
    const { tools } = await client.listTools();
    expect(tools.map((x) => x.name)).toEqual(toolListing(defaultTools()).map((x) => x.name));
    expect(attaching).toBe(1);
  });

  it('runs an allowed call in the guest, recorded in the session task as the mcp origin (agent context)', async () => {
    await build();
    const r = await client.callTool({ name: 'shell', arguments: { command: 'echo hi > f.txt' } });
    expect(r.isError).toBe(false);
    expect(text(r)).toContain('Exit code: 0');
    expect(ran).toEqual(['echo hi > f.txt']);
    const task = sessionTask()!;
    expect(task).toMatchObject({ context: 'agent', status: 'running' });
    const events = timeline.query({ taskId: task.id });
    expect(events.map((e) => e.type)).toEqual([
      'task.started',
      'tool.call',
      'command.requested',
      'policy.decision',
      'exec.started',
      'exec.finished',
      'tool.result',
    ]);
    const decision = events.find((e) => e.type === 'policy.decision')!;
    expect(decision.data).toMatchObject({ effect: 'allow', context: 'agent', origin: 'mcp:unit-client@9.9' });
  });

  it('a denied call is a tool error that says why and how to allow it; nothing runs', async () => {
    await build();
    const r = await client.callTool({ name: 'shell', arguments: { command: 'curl http://example.test' } });
    expect(r.isError).toBe(true);
    expect(text(r)).toContain('Command denied');
    expect(text(r)).toContain('Bash(curl:*)');
    expect(text(r)).toContain('[policy] allow');
    expect(ran).toEqual([]);
  });

  it('an asked call waits for the broker, with progress notifications, and returns once approved', async () => {
    await build();
    const progress: { message?: string }[] = [];
    const call = client.callTool({ name: 'shell', arguments: { command: 'rm -f old.txt' } }, undefined, {
      onprogress: (p) => progress.push(p),
    });
    await waitFor(() => controller.approvalsList().length > 0, 'a pending approval');
    const [pending] = controller.approvalsList();
    await waitFor(() => progress.length >= 2, 'progress notifications while waiting');
    expect(progress.some((p) => p.message?.includes(`approval ${pending!.id}`))).toBe(true);
    expect(ran).toEqual([]);
    controller.approvalsAnswer(pending!.id, { kind: 'approve-once' }, { id: 'cli', context: 'local' });
    const r = await call;
    expect(r.isError).toBe(false);
    expect(ran).toEqual(['rm -f old.txt']);
  });

  it('a user denial is a tool error with the user’s message', async () => {
    await build();
    const call = client.callTool({ name: 'shell', arguments: { command: 'rm -f old.txt' } });
    await waitFor(() => controller.approvalsList().length > 0, 'a pending approval');
    const [pending] = controller.approvalsList();
    controller.approvalsAnswer(
      pending!.id,
      { kind: 'deny', message: 'keep it' },
      { id: 'cli', context: 'local' },
    );
    const r = await call;
    expect(r.isError).toBe(true);
    expect(text(r)).toContain('The user denied it (cli: keep it)');
  });

  it('cancelling the request aborts the guest command', async () => {
    await build();
    const ac = new AbortController();
    const call = client.callTool({ name: 'shell', arguments: { command: 'sleep 30' } }, undefined, {
      signal: ac.signal,
    });
    await waitFor(() => ran.includes('sleep 30'), 'the command to start');
    ac.abort();
    await expect(call).rejects.toThrow();
    await waitFor(() => aborted.includes('sleep 30'), 'the guest command to be aborted');
  });

  it('the session budget: the call past maxCalls is refused with a tool error naming the key', async () => {
    await build({ maxCalls: 2, maxSessionMinutes: 60 });
    for (let i = 0; i < 2; i++)
      expect((await client.callTool({ name: 'shell', arguments: { command: `echo ${i}` } })).isError).toBe(
        false,
      );
    const r = await client.callTool({ name: 'shell', arguments: { command: 'echo 3' } });
    expect(r.isError).toBe(true);
    expect(text(r)).toContain('[mcp] maxCalls = 2');
    expect(ran).toEqual(['echo 0', 'echo 1']);
  });

  it('unknown tools, task_complete and bad input are tool errors, not protocol errors', async () => {
    await build();
    const none = await client.callTool({ name: 'task_complete', arguments: { summary: 'x' } });
    expect(none.isError).toBe(true);
    expect(text(none)).toContain('There is no tool "task_complete"');
    const bad = await client.callTool({ name: 'shell', arguments: { cmd: 'ls' } });
    expect(bad.isError).toBe(true);
    expect(text(bad)).toContain('Invalid input for shell');
    expect(ran).toEqual([]);
  });

  it('the session task finishes when the MCP server goes away', async () => {
    await build();
    await client.callTool({ name: 'shell', arguments: { command: 'echo a' } });
    const id = sessionTask()!.id;
    await bridge.close();
    await waitFor(() => timeline.getTask(id).status !== 'running', 'the session task to finish');
    expect(timeline.getTask(id)).toMatchObject({ status: 'completed' });
    expect(timeline.getTask(id).summary).toContain('1 tool call(s)');
  });

  it('a controller that went away gives a tool error that says so, never a hang', async () => {
    await build();
    await client.callTool({ name: 'shell', arguments: { command: 'echo a' } });
    await server.close();
    const r = await client.callTool({ name: 'shell', arguments: { command: 'echo b' } });
    expect(r.isError).toBe(true);
    expect(text(r)).toMatch(/sandbox is not available|no sandbox is running/);
  });
});
