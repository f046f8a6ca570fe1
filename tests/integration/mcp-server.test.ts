import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toolListing } from '../../src/host/mcp/tool-list.js';
import { locateSandbox } from '../../src/host/sandbox/locate.js';
import { Timeline } from '../../src/host/timeline/index.js';
import { defaultTools } from '../../src/host/tools/index.js';
import { assertBuilt, BIN, cli } from '../helpers/cli.js';
import { makeTestEnv, type TestSandboxEnv } from '../helpers/sandbox.js';
import { waitFor } from '../helpers/wait.js';

/**
 * `cowork-vm mcp` as an MCP client runs it: the SDK's own Client spawns the built binary over
 * stdio, and the server starts the workspace's sandbox itself (no `cowork-vm start` here). One
 * real guest for the file. Approvals are answered from another process (`cowork-vm approve`),
 * the guest is inspected with `cowork-vm exec`, and the timeline is read from its SQLite file.
 */
describe('cowork-vm mcp (built CLI, SDK client over stdio, real guest)', () => {
  let t: TestSandboxEnv;
  let ws: string;
  let client: Client;
  let stderr = '';
  const LONG = { timeout: 900_000, resetTimeoutOnProgress: true };
  const text = (r: unknown) => ((r as CallToolResult).content[0] as { text: string }).text;
  const guest = (command: string) => cli(['exec', '--json', '--workspace', ws, '--', command], t.env);

  beforeAll(async () => {
    assertBuilt();
    t = makeTestEnv('mcp');
    ws = t.workspace;
    mkdirSync(t.env.COWORK_VM_CONFIG_DIR as string, { recursive: true });
    writeFileSync(
      join(t.env.COWORK_VM_CONFIG_DIR as string, 'config.toml'),
      [
        '[policy]',
        'allow = ["Bash(echo:*)", "Bash(sleep:*)"]',
        'deny = ["Bash(curl:*)"]',
        '[guardrails]',
        'approvalTimeoutSeconds = 300',
      ].join('\n'),
    );
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [BIN, 'mcp', '--workspace', ws],
      env: t.env as Record<string, string>,
      stderr: 'pipe',
    });
    transport.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    client = new Client({ name: 'itest', version: '1.0' });
    await client.connect(transport);
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    if (ws) cli(['stop', '--workspace', ws], t.env);
    t?.cleanup();
  }, 120_000);

  it('lists the tools of `cowork-vm run` at once, with the zod-derived schemas', async () => {
    const { tools } = await client.listTools();
    const offered = tools.map((x) => ({
      name: x.name,
      description: x.description,
      inputSchema: x.inputSchema,
    }));
    expect(offered).toEqual(toolListing(defaultTools()));
  });

  it('starts the sandbox, runs shell in the guest, and the file appears in the workspace', async () => {
    const r = await client.callTool(
      { name: 'shell', arguments: { command: 'echo hi > f.txt' } },
      undefined,
      LONG,
    );
    expect(r.isError, text(r)).toBe(false);
    expect(readFileSync(join(ws, 'f.txt'), 'utf8')).toBe('hi\n');
    expect(stderr).toContain('starting one');
    // Once attached, the list comes from the running controller: still the same tools.
    expect((await client.listTools()).tools.map((x) => x.name)).toEqual(
      toolListing(defaultTools()).map((x) => x.name),
    );
  }, 900_000);

  it('a command denied by policy is a tool error with the reason', async () => {
    const r = await client.callTool({ name: 'shell', arguments: { command: 'curl http://example.com' } });
    expect(r.isError).toBe(true);
    expect(text(r)).toContain('Command denied');
    expect(text(r)).toContain('Bash(curl:*)');
  }, 60_000);

  it('an asked command waits (with progress), is approved from another process, and returns its output', async () => {
    const progress: { message?: string }[] = [];
    const call = client.callTool(
      { name: 'shell', arguments: { command: 'rm -f f.txt && echo removed' } },
      undefined,
      { ...LONG, onprogress: (p) => progress.push(p) },
    );
    let id = '';
    await waitFor(
      () => {
        const r = cli(['approvals', '--json', '--workspace', ws], t.env);
        const pending = r.code === 0 ? (JSON.parse(r.stdout) as { id: string }[]) : [];
        id = pending[0]?.id ?? '';
        return id !== '';
      },
      'a pending approval',
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    await waitFor(() => progress.length > 0, 'a progress notification while waiting', { timeoutMs: 30_000 });
    expect(progress.some((p) => p.message?.includes(id))).toBe(true);
    const ok = cli(['approve', id, '--workspace', ws], t.env);
    expect(ok.code, ok.stderr).toBe(0);
    const r = await call;
    expect(r.isError, text(r)).toBe(false);
    expect(text(r)).toContain('removed');
  }, 180_000);

  it('cancelling a running call stops the guest command', async () => {
    const ac = new AbortController();
    const call = client.callTool({ name: 'shell', arguments: { command: 'sleep 30' } }, undefined, {
      signal: ac.signal,
    });
    const outcome = call.then(
      () => 'resolved',
      () => 'rejected',
    );
    await waitFor(() => guest('pgrep -x sleep').code === 0, 'sleep running in the guest', {
      timeoutMs: 60_000,
      intervalMs: 500,
    });
    ac.abort();
    expect(await outcome).toBe('rejected');
    await waitFor(() => guest('pgrep -x sleep').code === 1, 'sleep gone from the guest', {
      timeoutMs: 30_000,
      intervalMs: 500,
      detail: () => guest('ps -eo pid,args').stdout,
    });
  }, 180_000);

  it('the timeline records the calls in one session task with the mcp origin, in the agent context', () => {
    const timeline = Timeline.open(join(locateSandbox(ws, t.env).stateDir, 'timeline.db'));
    try {
      const task = timeline.listTasks({ limit: 20 }).find((x) => x.origin === 'mcp:itest@1.0');
      expect(task).toMatchObject({ context: 'agent', status: 'running' });
      const events = timeline.query({ taskId: task!.id });
      const calls = events
        .filter((e) => e.type === 'tool.call')
        .map((e) => (e.data as { name: string }).name);
      expect(calls).toEqual(['shell', 'shell', 'shell', 'shell']);
      const decisions = events.filter((e) => e.type === 'policy.decision').map((e) => e.data);
      expect(decisions.map((d) => (d as { effect: string }).effect)).toEqual([
        'allow',
        'deny',
        'ask',
        'allow',
      ]);
      for (const d of decisions) expect(d).toMatchObject({ origin: 'mcp:itest@1.0', context: 'agent' });
      expect(events.map((e) => e.type)).toContain('approval.answered');
    } finally {
      timeline.close();
    }
  });
});
