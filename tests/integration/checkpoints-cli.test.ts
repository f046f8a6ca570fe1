import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PendingApproval } from '../../src/host/approvals/types.js';
import { LocalControlClient } from '../../src/host/control/local-client.js';
import { locateSandbox } from '../../src/host/sandbox/locate.js';
import { AnthropicApiStandIn, reply, toolUse } from '../helpers/anthropic-api.js';
import { assertBuilt, cli, cliAsync } from '../helpers/cli.js';
import { makeTestEnv, type TestSandboxEnv } from '../helpers/sandbox.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Checkpoints end to end: the built CLI, a real controller and QEMU guest, agent tasks (the
 * Messages API stand-in scripts their tool calls) that change the workspace by shell inside the
 * guest; `diff`, `undo` and `checkpoints` read the state dir. Approvals are answered over the
 * control socket, as `cowork-vm approve` does. The last test SIGKILLs the controller.
 */
const KEY = 'sk-ant-checkpoints-test';

/** Every entry under `dir` (not following links) with its type, permission bits and bytes. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, prefix: string) => {
    for (const name of readdirSync(d).sort()) {
      if (prefix === '' && name === '.git') continue;
      const p = join(d, name);
      const st = lstatSync(p);
      const rel = prefix + name;
      if (st.isSymbolicLink()) out[rel] = `link ${readlinkSync(p)}`;
      else if (st.isDirectory()) {
        out[`${rel}/`] = 'dir';
        walk(p, `${rel}/`);
      } else out[rel] = `file ${(st.mode & 0o7777).toString(8)} ${readFileSync(p).toString('base64')}`;
    }
  };
  walk(dir, '');
  return out;
}

describe('checkpoints, diff and undo with a real guest (built CLI)', () => {
  let t: TestSandboxEnv;
  let ws: string;
  let outside: string;
  let api: AnthropicApiStandIn;
  let approver: LocalControlClient;
  let answering: NodeJS.Timeout;
  const answered = new Set<string>();
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    assertBuilt();
    api = await AnthropicApiStandIn.start({ apiKey: KEY });
    t = makeTestEnv('ckpt');
    t.env.ANTHROPIC_BASE_URL = api.baseURL;
    env = { ...t.env, ANTHROPIC_API_KEY: KEY };
    ws = t.workspace;
    outside = join(t.root, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'host.txt'), 'host file\n');
    writeFileSync(join(ws, 'a.txt'), 'one\ntwo\n');
    writeFileSync(join(ws, 'gone.txt'), 'bye\n');
    mkdirSync(join(ws, 'src'));
    writeFileSync(join(ws, 'src', 'old.ts'), 'export {}\n');
    writeFileSync(join(ws, 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o644 });
    chmodSync(join(ws, 'run.sh'), 0o644);
    writeFileSync(join(ws, 'secret.key'), 'k\n');
    chmodSync(join(ws, 'secret.key'), 0o600);
    symlinkSync('a.txt', join(ws, 'alias'));
    mkdirSync(join(ws, 'docs'));
    writeFileSync(join(ws, 'docs', 'readme.md'), 'inside\n');
    // A malicious repository the user cloned: its config, hooks and attributes try to make the
    // host run `touch <marker>` when anything on the host runs git here.
    const marker = join(outside, 'pwned');
    mkdirSync(join(ws, '.git', 'hooks'), { recursive: true });
    writeFileSync(join(ws, '.git', 'HEAD'), 'ref: refs/heads/main\n');
    writeFileSync(
      join(ws, '.git', 'config'),
      `[core]\n\tfsmonitor = "touch ${marker}"\n[filter "evil"]\n\tclean = touch ${marker}\n\tsmudge = touch ${marker}\n\trequired = true\n[diff "evil"]\n\ttextconv = touch ${marker}\n`,
    );
    for (const h of ['pre-commit', 'post-checkout', 'post-index-change'])
      writeFileSync(join(ws, '.git', 'hooks', h), `#!/bin/sh\ntouch ${marker}\n`, { mode: 0o755 });
    writeFileSync(join(ws, '.gitattributes'), '* filter=evil diff=evil text eol=crlf ident\n');

    const r = cli(['start', '--detach', '--workspace', ws], t.env);
    expect(r.code, r.stderr).toBe(0);
    const loc = locateSandbox(ws, t.env);
    approver = await LocalControlClient.connect(loc.socketPath, loc.workspace);
    answering = setInterval(async () => {
      const pending = await approver.call<PendingApproval[]>('approvals.list').catch(() => []);
      for (const p of pending) {
        if (answered.has(p.id)) continue;
        answered.add(p.id);
        await approver.call('approvals.answer', { id: p.id, kind: 'approve-once' }).catch(() => undefined);
      }
    }, 100);
  });

  afterAll(async () => {
    clearInterval(answering);
    approver?.close();
    cli(['stop', '--workspace', ws], t.env);
    await api?.close();
    t?.cleanup();
  });

  async function runTask(command: string): Promise<{ id: string; stdout: string }> {
    api.enqueue(
      reply([toolUse('shell', { command })]),
      reply([toolUse('task_complete', { summary: 'done by shell' })]),
    );
    const r = await cliAsync(['run', '--workspace', ws, 'change things by shell'], env);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const id = /task (t-[a-z0-9]+) started/.exec(r.stdout)?.[1];
    expect(id, r.stdout).toBeDefined();
    return { id: id as string, stdout: r.stdout };
  }

  const json = (args: string[]) => {
    const r = cli([...args, '--workspace', ws, '--json'], t.env);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  };

  it('a task editing by shell (sed -i, rm, mv, chmod, ln -s, a binary write) shows all of it in diff, and undo restores bytes, modes and links exactly', async () => {
    const before = snapshot(ws);
    const { id, stdout } = await runTask(
      "sed -i 's/two/TWO/' a.txt && rm gone.txt && mv src/old.ts src/new.ts && chmod 755 run.sh && " +
        "chmod 640 secret.key && ln -s ../outside out && ln -sfn run.sh alias && printf '\\000\\001' > img.bin",
    );
    // run's summary is the change set, shell side effects included.
    expect(stdout).toContain(`workspace changes (cowork-vm diff ${id} · cowork-vm undo ${id}):`);
    expect(stdout).toMatch(/ {2}D {2}gone\.txt\n/);
    expect(stdout).toMatch(/ {2}m {2}secret\.key \(600 → 640\)\n/);

    const d = json(['diff', id]);
    expect(d.live).toBe(false);
    expect(
      Object.fromEntries(d.changes.map((c: { path: string; change: string }) => [c.path, c.change])),
    ).toEqual({
      'a.txt': 'modified',
      alias: 'modified',
      'gone.txt': 'deleted',
      'img.bin': 'created',
      out: 'created',
      'run.sh': 'mode',
      'secret.key': 'mode',
      'src/new.ts': 'created',
      'src/old.ts': 'deleted',
    });
    expect(d.changes.find((c: { path: string }) => c.path === 'out').linkTarget).toBe('../outside');
    expect(d.changes.find((c: { path: string }) => c.path === 'img.bin').binary).toBe(true);
    expect(d.patch).toContain('+TWO');
    const text = cli(['diff', id, '--workspace', ws], t.env);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/m {2}run\.sh \(644 → 755\)/);
    expect(text.stdout).toMatch(/A {2}out -> \.\.\/outside/);
    expect(text.stdout).toMatch(/Binary files .*img\.bin differ/);
    const stat = cli(['diff', id, '--stat', '--workspace', ws], t.env);
    expect(stat.stdout).toMatch(/a\.txt +\| +2 \+-/);
    expect(stat.stdout).not.toContain('+TWO');

    const list = json(['checkpoints']);
    expect(list.find((r: { id: string }) => r.id === id)).toMatchObject({ kind: 'task', taskId: id });

    const u = json(['undo', id]);
    expect(u).toMatchObject({ of: id, conflicts: [], forced: false });
    expect(snapshot(ws)).toEqual(before);
    // The guest sees the restored workspace too.
    const g = cli(['exec', '--workspace', ws, '--', 'cat a.txt; stat -c %a run.sh; readlink alias'], t.env);
    expect(g.stdout).toBe('one\ntwo\n644\na.txt\n');
    // The undo is a checkpoint of its own, so it can be undone: the task's result comes back.
    json(['undo', u.undo]);
    expect(readFileSync(join(ws, 'a.txt'), 'utf8')).toBe('one\nTWO\n');
    expect(readlinkSync(join(ws, 'out'))).toBe('../outside');
    json(['undo', id, '--force']);
    expect(snapshot(ws)).toEqual(before);
  });

  it('undo refuses when the user changed a file since the task, touching nothing', async () => {
    const { id } = await runTask("echo 'by the task' > a.txt && echo new > fresh.txt");
    writeFileSync(join(ws, 'a.txt'), 'edited on the host\n');
    const r = cli(['undo', id, '--workspace', ws], t.env);
    expect(r.code).toBe(75);
    expect(r.stderr).toMatch(/undo t-\S+ refused: changed since .*: a\.txt — nothing was touched/);
    expect(readFileSync(join(ws, 'a.txt'), 'utf8')).toBe('edited on the host\n');
    expect(readFileSync(join(ws, 'fresh.txt'), 'utf8')).toBe('new\n');
    const forced = json(['undo', id, '--force']);
    expect(forced.conflicts).toEqual(['a.txt']);
    expect(readFileSync(join(ws, 'a.txt'), 'utf8')).toBe('one\ntwo\n');
    expect(existsSync(join(ws, 'fresh.txt'))).toBe(false);
  });

  it('a malicious .git, .gitattributes filter and hooks run nothing; undo does not follow a link out of the workspace', async () => {
    const marker = join(outside, 'pwned');
    // The guest turns docs/ into a link to a host folder (absolute, as the host names it) and
    // writes through the attributes' filter name; undo must put docs/ back as a folder.
    const { id } = await runTask(`rm -r docs && ln -s ${outside} docs && printf 'x\\r\\n' > crlf.txt`);
    const d = json(['diff', id]);
    expect(d.changes.map((c: { path: string }) => c.path)).toEqual(['crlf.txt', 'docs', 'docs/readme.md']);
    json(['undo', id]);
    expect(lstatSync(join(ws, 'docs')).isDirectory()).toBe(true);
    expect(readFileSync(join(ws, 'docs', 'readme.md'), 'utf8')).toBe('inside\n');
    expect(readdirSync(outside).sort()).toEqual(['host.txt']);
    expect(readFileSync(join(outside, 'host.txt'), 'utf8')).toBe('host file\n');
    expect(existsSync(marker)).toBe(false);
    expect(existsSync(join(ws, 'crlf.txt'))).toBe(false);
  });

  it('exec --context agent outside a task gets a checkpoint of its own', async () => {
    // Async: the approval it waits for is answered by this process's event loop.
    const r = await cliAsync(
      ['exec', '--workspace', ws, '--context', 'agent', '--', 'echo x > via-exec.txt'],
      t.env,
    );
    expect(r.code, r.stderr).toBe(0);
    const rec = json(['checkpoints']).find((c: { kind: string; label: string }) => c.kind === 'exec');
    expect(rec).toMatchObject({ label: 'echo x > via-exec.txt', after: expect.any(Object) });
    const d = json(['diff', rec.id]);
    expect(d.changes.map((c: { path: string; change: string }) => [c.path, c.change])).toEqual([
      ['via-exec.txt', 'created'],
    ]);
  });

  it('killing the controller mid-task loses no checkpoint: diff compares with now, undo still works', async () => {
    api.enqueue(
      reply([toolUse('shell', { command: 'echo during > during.txt && sleep 600' })]),
      reply([toolUse('task_complete', { summary: 'never reached' })]),
    );
    const run = cliAsync(['run', '--workspace', ws, 'long task'], env);
    await waitFor(() => existsSync(join(ws, 'during.txt')), 'the task to write during.txt', {
      timeoutMs: 120_000,
    });
    const st = json(['status']);
    process.kill(st.pid, 'SIGKILL');
    await run;
    // Not what is tested here: the guest goes too, so nothing outlives the test.
    try {
      process.kill(st.vm.pid, 'SIGKILL');
    } catch {}
    const rec = json(['checkpoints']).find((c: { label: string }) => c.label === 'long task');
    expect(rec).toMatchObject({ kind: 'task' });
    expect(rec.after).toBeUndefined();
    const d = json(['diff', rec.id]);
    expect(d.live).toBe(true);
    expect(d.changes.map((c: { path: string }) => c.path)).toEqual(['during.txt']);
    json(['undo', rec.id]);
    expect(existsSync(join(ws, 'during.txt'))).toBe(false);
  });
});
