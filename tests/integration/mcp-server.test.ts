import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir, hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toolListing } from '../../src/host/mcp/tool-list.js';
import { locateSandbox } from '../../src/host/sandbox/locate.js';
import { Timeline } from '../../src/host/timeline/index.js';
import { defaultTools } from '../../src/host/tools/index.js';
import { AnthropicApiStandIn, reply, text as textBlock, toolUse } from '../helpers/anthropic-api.js';
import { assertBuilt, BIN, cli } from '../helpers/cli.js';
import { makeTestEnv, type TestSandboxEnv } from '../helpers/sandbox.js';
import { waitFor } from '../helpers/wait.js';

/**
 * `cowork-vm mcp` as an MCP client runs it: the SDK's own Client spawns the built binary over
 * stdio, and the server starts the workspace's sandbox itself (no `cowork-vm start` here). One
 * real guest for the file. Approvals are answered from another process (`cowork-vm approve`),
 * the guest is inspected with `cowork-vm exec`, and the timeline is read from its SQLite file.
 * Last, a client nobody here wrote: Claude Code from the npm registry (a devDependency), in
 * `claude -p` against the Messages API stand-in, attaches its own `cowork-vm mcp` to the same
 * sandbox.
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
        'allow = ["Bash(echo:*)", "Bash(sleep:*)", "Bash(uname:*)"]',
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

  it('Claude Code (npm @anthropic-ai/claude-code, claude -p) runs its command through cowork-vm mcp in the guest, with its own Bash off', async () => {
    // The package's postinstall puts the native binary at bin/claude.exe; with install scripts
    // off that is a placeholder and cli-wrapper.cjs (shipped for that case) launches the binary.
    const pkgDir = dirname(createRequire(import.meta.url).resolve('@anthropic-ai/claude-code/package.json'));
    const version = (JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string })
      .version;
    const probe = spawnSyncOk(join(pkgDir, 'bin', 'claude.exe'));
    const [cmd, pre] = probe
      ? [join(pkgDir, 'bin', 'claude.exe'), []]
      : [process.execPath, [join(pkgDir, 'cli-wrapper.cjs')]];

    const api = await AnthropicApiStandIn.start({ apiKey: 'sk-ant-test-claude-code' });
    try {
      api.enqueue(
        reply(
          [toolUse('mcp__cowork-vm__shell', { command: 'echo from-claude-code > cc.txt && uname -n' })],
          undefined,
          'tool_use',
        ),
        reply([textBlock('wrote cc.txt')]),
      );
      const cfg = join(t.root, 'claude-mcp.json');
      writeFileSync(
        cfg,
        JSON.stringify({
          mcpServers: { 'cowork-vm': { command: process.execPath, args: [BIN, 'mcp', '--workspace', ws] } },
        }),
      );
      const home = join(t.root, 'claude-home'); // its settings and session files, not the user's
      mkdirSync(home, { recursive: true });
      const env = {
        ...t.env,
        HOME: home,
        // cowork-vm mcp finds the image cache under HOME unless told: the suite's built images.
        COWORK_VM_CACHE_DIR: process.env.COWORK_VM_CACHE_DIR ?? join(homedir(), '.cache', 'cowork-vm'),
        ANTHROPIC_BASE_URL: api.baseURL,
        ANTHROPIC_API_KEY: 'sk-ant-test-claude-code',
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
        DISABLE_AUTOUPDATER: '1',
        MCP_TIMEOUT: '300000',
        MCP_TOOL_TIMEOUT: '600000',
      };
      const args = [
        ...pre,
        '-p',
        'Write from-claude-code into cc.txt in the workspace.',
        '--mcp-config',
        cfg,
        '--strict-mcp-config',
        '--disallowedTools',
        'Bash',
        'Edit',
        'Write',
        'NotebookEdit',
        '--allowedTools',
        'mcp__cowork-vm__shell',
        '--output-format',
        'json',
        '--model',
        'claude-sonnet-5-5',
      ];
      const r = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const c = spawn(cmd, args, { env, cwd: ws, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        c.stdout.on('data', (d) => (out += d));
        c.stderr.on('data', (d) => (err += d));
        const timer = setTimeout(() => c.kill('SIGKILL'), 600_000);
        c.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code, out, err });
        });
      });
      const detail = `claude ${version} exit ${r.code}\nstdout: ${r.out.slice(0, 2000)}\nstderr: ${r.err.slice(0, 2000)}`;
      expect(r.code, detail).toBe(0);
      expect(JSON.parse(r.out), detail).toMatchObject({
        type: 'result',
        subtype: 'success',
        is_error: false,
      });

      // The model got the guest's output back as the tool result (the guest's host name, not
      // this host's), and the file the guest's shell wrote is in the workspace.
      const posts = api.requests.filter((q) => q.method === 'POST');
      expect(
        posts.map((q) => q.path).every((p) => p === '/v1/messages'),
        posts.map((q) => q.path).join(' '),
      ).toBe(true);
      const offered = (posts[0]?.body?.tools ?? []).map((x: { name: string }) => x.name) as string[];
      expect(offered).toContain('mcp__cowork-vm__shell');
      for (const hostTool of ['Bash', 'Edit', 'Write', 'NotebookEdit'])
        expect(offered).not.toContain(hostTool);
      const answered = JSON.stringify(posts[1]?.body?.messages?.at(-1) ?? {});
      expect(answered).toContain('tool_result');
      const uname = guest('uname -n');
      const guestName = (JSON.parse(uname.stdout) as { stdout: string }).stdout.trim();
      expect(guestName).not.toBe('');
      expect(guestName).not.toBe(hostname());
      expect(answered).toContain(guestName);
      expect(readFileSync(join(ws, 'cc.txt'), 'utf8')).toBe('from-claude-code\n');

      // Its calls are a session of their own in the timeline, under Claude Code's client name.
      const timeline = Timeline.open(join(locateSandbox(ws, t.env).stateDir, 'timeline.db'));
      try {
        const task = timeline
          .listTasks({ limit: 20 })
          .find((x) => x.origin?.startsWith('mcp:') && x.origin !== 'mcp:itest@1.0');
        expect(task, JSON.stringify(timeline.listTasks({ limit: 20 }).map((x) => x.origin))).toBeDefined();
        const calls = timeline
          .query({ taskId: task!.id })
          .filter((e) => e.type === 'tool.call')
          .map((e) => e.data as { name: string; input?: { command?: string } });
        expect(calls.map((c) => c.name)).toEqual(['shell']);

        // The session was checkpointed like a task: once Claude Code has gone, its change set
        // is recorded, `diff` shows exactly cc.txt created, and `undo` takes it back.
        let diff: { live: boolean; changes: { path: string; change: string }[] } | undefined;
        await waitFor(
          () => {
            const r = cli(['diff', task!.id, '--json', '--workspace', ws], t.env);
            diff = r.code === 0 ? JSON.parse(r.stdout) : undefined;
            return diff?.live === false;
          },
          "the session's end checkpoint",
          { timeoutMs: 60_000, intervalMs: 500, detail: () => JSON.stringify(diff) },
        );
        expect(diff!.changes.map((c) => [c.path, c.change])).toEqual([['cc.txt', 'created']]);
        const undo = cli(['undo', task!.id, '--workspace', ws], t.env);
        expect(undo.code, undo.stderr).toBe(0);
        expect(existsSync(join(ws, 'cc.txt'))).toBe(false);
      } finally {
        timeline.close();
      }
    } finally {
      await api.close();
    }
  }, 900_000);

  it('the VM crashing mid-call is a tool error that says so, never a hang; workspace files stay', async () => {
    const st = JSON.parse(cli(['status', '--json', '--workspace', ws], t.env).stdout) as {
      vm: { pid?: number };
    };
    expect(st.vm.pid).toBeTypeOf('number');
    writeFileSync(join(ws, 'keep.txt'), 'kept\n');
    const call = client.callTool({ name: 'shell', arguments: { command: 'sleep 120' } }, undefined, LONG);
    await waitFor(() => guest('pgrep -x sleep').code === 0, 'sleep running in the guest', {
      timeoutMs: 60_000,
      intervalMs: 500,
    });
    process.kill(st.vm.pid as number, 'SIGKILL');
    const r = await call;
    expect(r.isError).toBe(true);
    expect(text(r)).toMatch(/VM|sandbox|guest/i);
    expect(readFileSync(join(ws, 'keep.txt'), 'utf8')).toBe('kept\n');
    // The next call is refused with a message, too, not left waiting.
    const next = await client.callTool(
      { name: 'shell', arguments: { command: 'echo again' } },
      undefined,
      LONG,
    );
    expect(next.isError).toBe(true);
    console.log(`after a VM crash: ${text(r)} | next call: ${text(next)}`);
  }, 300_000);
});

/** True when the file runs as a program (`--version` exits 0): the postinstall put the real binary there. */
function spawnSyncOk(file: string): boolean {
  if (!existsSync(file)) return false;
  const r = spawnSync(file, ['--version'], { encoding: 'utf8', timeout: 60_000 });
  return r.status === 0;
}
