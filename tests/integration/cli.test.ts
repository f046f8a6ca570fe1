import { existsSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnthropicApiStandIn, reply, text, toolUse } from '../helpers/anthropic-api.js';
import { assertBuilt, cli, cliAsync } from '../helpers/cli.js';
import { makeTestEnv, type TestSandboxEnv } from '../helpers/sandbox.js';
import { waitFor } from '../helpers/wait.js';

type Approval = { id: string; command: string };

function waitForApproval(env: NodeJS.ProcessEnv, ws: string): Promise<Approval> {
  return waitFor(
    () => (JSON.parse(cli(['approvals', '--json', '--workspace', ws], env).stdout || '[]') as Approval[])[0],
    'a pending approval (cowork-vm approvals --json)',
    { timeoutMs: 60_000, intervalMs: 250 },
  );
}

describe('cowork-vm CLI end to end (built binary, real guest)', () => {
  let t: TestSandboxEnv;
  let ws: string;
  let api: AnthropicApiStandIn;

  beforeAll(async () => {
    assertBuilt();
    // The Messages API stand-in (no internet here); the controller's SDK client finds it through
    // ANTHROPIC_BASE_URL, and `run` passes the key from ANTHROPIC_API_KEY as the explicit override.
    api = await AnthropicApiStandIn.start({ apiKey: 'sk-ant-cli-test' });
    t = makeTestEnv('cli');
    t.env.ANTHROPIC_BASE_URL = api.baseURL;
    ws = t.workspace;
    const r = cli(['start', '--detach', '--workspace', ws], t.env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('sandbox running');
  });
  afterAll(async () => {
    cli(['stop', '--workspace', ws], t.env);
    await api?.close();
    t.cleanup();
  });

  it('run: the agent streams its text, writes through the guest and ends with a summary', async () => {
    api.enqueue(
      reply([
        text('Writing the note now.'),
        toolUse('write_file', { path: 'from-run.txt', content: 'made by the agent\n' }),
      ]),
      reply([toolUse('task_complete', { summary: 'wrote from-run.txt' })]),
    );
    const r = await cliAsync(['run', '--workspace', ws, 'write a note'], {
      ...t.env,
      ANTHROPIC_API_KEY: 'sk-ant-cli-test',
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Writing the note now.');
    expect(r.stdout).toContain('▸ write_file');
    expect(r.stdout).toMatch(/COMPLETED: wrote from-run.txt/);
    // From the task's end checkpoint (every change, however made), not guessed from tool-call excerpts.
    expect(r.stdout).toMatch(
      /workspace changes \(cowork-vm diff t-\S+ · cowork-vm undo t-\S+\):\n {2}A {2}from-run\.txt\n/,
    );
    expect(r.stdout).toMatch(/task t-[a-z0-9]+/);
    expect(readFileSync(join(ws, 'from-run.txt'), 'utf8')).toBe('made by the agent\n');
    // The key was used by the host only: it is in no request the guest could see.
    const guest = cli(['exec', '--workspace', ws, '--', 'env; cat /workspace/* 2>/dev/null'], t.env);
    expect(guest.stdout).not.toContain('sk-ant-cli-test');
  });

  it('exec runs in the guest, writes into the workspace and returns the exit code', () => {
    const r = cli(['exec', '--workspace', ws, '--', 'echo hi > /workspace/hello.txt && uname -a'], t.env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Linux /);
    expect(readFileSync(join(ws, 'hello.txt'), 'utf8')).toBe('hi\n');
    expect(cli(['exec', '--workspace', ws, '--', 'exit 7'], t.env).code).toBe(7);
  });

  it('exec --json prints the result object', () => {
    const r = cli(['exec', '--json', '--workspace', ws, '--', 'echo', 'x;', 'echo y >&2'], t.env);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ exitCode: 0, signal: null, stdout: 'x\n', stderr: 'y\n', truncated: false });
    expect(typeof j.durationMs).toBe('number');
  });

  it('exec --timeout kills the command and exits 124', () => {
    const r = cli(['exec', '--timeout', '2', '--workspace', ws, '--', 'sleep 60'], t.env);
    expect(r.code).toBe(124);
    expect(r.stderr).toContain('timed out');
  });

  it('exec -i forwards standard input', () => {
    const r = cli(['exec', '-i', '--workspace', ws, '--', 'tr a-z A-Z'], t.env, 'shout');
    expect(r.stdout).toBe('SHOUT');
  });

  it('status --json describes the running sandbox', () => {
    const r = cli(['status', '--json', '--workspace', ws], t.env);
    expect(r.code).toBe(0);
    const st = JSON.parse(r.stdout);
    expect(st.state).toBe('running');
    expect(st.workspace).toBe(ws);
    expect(st.vm.accel).toBe('tcg');
    expect(['9p', 'virtiofs']).toContain(st.vm.share);
  });

  it('refuses a second start for the same workspace', () => {
    const r = cli(['start', '--detach', '--workspace', ws], t.env);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/already running/);
  });

  it('an asked command waits until `approve` from another process, then runs', async () => {
    const pending = cliAsync(
      ['exec', '--context', 'agent', '--workspace', ws, '--', 'touch /workspace/approved.txt'],
      t.env,
    );
    const a = await waitForApproval(t.env, ws);
    expect(a.command).toBe('touch /workspace/approved.txt');
    expect(existsSync(join(ws, 'approved.txt'))).toBe(false);
    const ok = cli(['approve', a.id, '--workspace', ws], t.env);
    expect(ok.code, ok.stderr).toBe(0);
    const r = await pending;
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(ws, 'approved.txt'))).toBe(true);
    // A second answer to the same approval is refused clearly.
    const again = cli(['deny', a.id, '--workspace', ws], t.env);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/already answered|no pending approval|not found/i);
  });

  it('`deny` makes the waiting exec exit 126 with the reason', async () => {
    const pending = cliAsync(
      ['exec', '--context', 'agent', '--workspace', ws, '--', 'touch /workspace/denied.txt'],
      t.env,
    );
    const a = await waitForApproval(t.env, ws);
    const d = cli(['deny', a.id, '--message', 'not today', '--workspace', ws], t.env);
    expect(d.code, d.stderr).toBe(0);
    const r = await pending;
    expect(r.code).toBe(126);
    expect(r.stderr).toContain('not today');
    expect(existsSync(join(ws, 'denied.txt'))).toBe(false);
  });

  it('a built-in dangerous command is denied in every context without asking', () => {
    for (const context of ['local', 'agent', 'gateway']) {
      const r = cli(['exec', '--context', context, '--workspace', ws, '--', 'echo ok && sudo id'], t.env);
      expect(r.code).toBe(126);
      expect(r.stderr).toMatch(/sudo/);
    }
  });

  it('timeline records the commands, decisions and executions', () => {
    const r = cli(['timeline', '--json', '--workspace', ws], t.env);
    expect(r.code, r.stderr).toBe(0);
    const types = new Set((JSON.parse(r.stdout) as { type: string }[]).map((e) => e.type));
    for (const ty of [
      'vm.started',
      'command.requested',
      'policy.decision',
      'approval.asked',
      'approval.answered',
      'exec.started',
      'exec.finished',
    ]) {
      expect(types, ty).toContain(ty);
    }
  });

  it('every command has --help with an example', () => {
    for (const c of [
      'start',
      'status',
      'exec',
      'stop',
      'approvals',
      'approve',
      'deny',
      'timeline',
      'image',
      'doctor',
    ]) {
      const r = cli([c, '--help'], t.env);
      expect(r.code, c).toBe(0);
      expect(r.stdout, c).toContain('Example');
    }
  });

  it('stop ends it; then status says stopped and exec says nothing runs', () => {
    const s = cli(['stop', '--workspace', ws], t.env);
    expect(s.code, s.stderr).toBe(0);
    const st = cli(['status', '--json', '--workspace', ws], t.env);
    expect(st.code).toBe(3);
    expect(JSON.parse(st.stdout).state).toBe('stopped');
    const e = cli(['exec', '--workspace', ws, '--', 'true'], t.env);
    expect(e.code).toBe(75);
    expect(e.stderr).toMatch(/no sandbox is running for .*`cowork-vm start --detach`/);
    expect(readFileSync(join(ws, 'hello.txt'), 'utf8')).toBe('hi\n');
  });
});

describe('cowork-vm CLI refuses bad input with one clear line', () => {
  const t = makeTestEnv('clibad');
  afterAll(() => t.cleanup());

  it('a missing workspace', () => {
    const r = cli(['start', '--workspace', join(t.root, 'nope')], t.env);
    expect(r.code).toBe(66);
    expect(r.stderr).toMatch(/does not exist/);
  });

  it('the filesystem root, the home directory and system folders', () => {
    for (const dir of ['/', '/etc', '/usr/lib', process.env.HOME ?? '/root']) {
      const r = cli(['start', '--workspace', dir], t.env);
      expect(r.code, dir).toBe(64);
      expect(r.stderr, dir).toMatch(/refusing workspace/);
    }
  });

  it('a missing image names the command that builds it', () => {
    const env = { ...t.env, COWORK_VM_CACHE_DIR: mkdtempSync(join(tmpdir(), 'noimg-')) };
    const r = cli(['start', '--workspace', t.workspace], env);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/cowork-vm image build/);
    expect(existsSync(join(t.root, 'state'))).toBe(true); // nothing half-started is left locked
    const again = cli(['start', '--workspace', t.workspace], env);
    expect(again.stderr).not.toMatch(/already running/);
  });

  it('a missing qemu says how to install it', () => {
    // A PATH with node and nothing else (node's own folder may hold qemu too, e.g. /usr/bin).
    const bin = mkdtempSync(join(tmpdir(), 'noqemu-'));
    symlinkSync(process.execPath, join(bin, 'node'));
    const env = { ...t.env, PATH: bin };
    const r = cli(['start', '--workspace', t.workspace], env);
    expect(r.code).toBe(69);
    expect(r.stderr).toMatch(/qemu/i);
    expect(r.stderr).toMatch(/setup-host|apt-get/);
  });

  it('out-of-range flags name the flag, value and range', () => {
    const r = cli(['start', '--cpus', '99', '--workspace', t.workspace], t.env);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--cpus = 99 is out of range \(1–16\)/);
  });

  it('exec with nothing running', () => {
    const r = cli(['exec', '--workspace', t.workspace, '--', 'true'], t.env);
    expect(r.code).toBe(75);
    expect(r.stderr).toMatch(/no sandbox is running/);
  });
});
