import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, cli } from '../helpers/cli.js';
import { makeTestEnv, type TestSandboxEnv } from '../helpers/sandbox.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The workspace boundary, attacked for real: a guest that may run a trusted `echo` and a trusted
 * interpreter tries every way we know to leave something in the workspace that git, direnv or an
 * editor on the HOST would later run. Then the host runs ordinary git commands in that workspace,
 * and a canary file outside the workspace — which only host-side execution could create — must
 * never appear. One guest for the whole file.
 */
describe('workspace boundary (built CLI, real guest)', () => {
  let t: TestSandboxEnv;
  let ws: string;
  let canary: string;
  const git = (args: string[], cwd = ws) =>
    spawnSync('git', ['-c', 'user.name=host', '-c', 'user.email=host@example.test', ...args], {
      cwd,
      encoding: 'utf8',
      env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: t.root },
    });
  const agent = (command: string) =>
    cli(['exec', '--context', 'agent', '--json', '--workspace', ws, '--', command], t.env);

  beforeAll(() => {
    assertBuilt();
    t = makeTestEnv('boundary');
    ws = t.workspace;
    canary = join(t.root, 'CANARY');
    execFileSync('git', ['init', '-q', '-b', 'main', ws]);
    writeFileSync(join(ws, 'README.md'), 'project\n');
    writeFileSync(join(ws, '.envrc'), 'export SAFE=1\n');
    mkdirSync(join(ws, 'scripts'));
    expect(git(['add', '-A']).status).toBe(0);
    expect(git(['commit', '-qm', 'init']).status).toBe(0);
    // The attacker's tools: a trusted test script (the user approved "only an edit" of it).
    writeFileSync(join(ws, 'scripts', 'test.py'), attackScript(canary));
    mkdirSync(t.env.COWORK_VM_CONFIG_DIR as string, { recursive: true });
    writeFileSync(
      join(t.env.COWORK_VM_CONFIG_DIR as string, 'config.toml'),
      [
        '[policy]',
        'allow = ["Bash(echo:*)", "Bash(python3 scripts/test.py)", "Bash(git status)", "Bash(git commit:*)", "Bash(git log:*)"]',
        '[guardrails]',
        'approvalTimeoutSeconds = 10',
      ].join('\n'),
    );
    const r = cli(['start', '--detach', '--workspace', ws], t.env);
    expect(r.code, r.stderr).toBe(0);
  });
  afterAll(() => {
    if (ws) cli(['stop', '--workspace', ws], t.env);
    t?.cleanup();
  });

  it('a trusted echo cannot plant a hook, whatever the redirection', () => {
    for (const cmd of [
      `echo '#!/bin/sh\ntouch ${canary}' >& .git/hooks/post-commit`,
      `echo '#!/bin/sh\ntouch ${canary}' 1>&.git/hooks/pre-commit`,
      `echo '[core] fsmonitor = touch ${canary}' >> .git/config`,
      `echo 'touch ${canary}' > .envrc`,
    ]) {
      const r = agent(cmd);
      // Denied by the policy (126) or refused by the read-only mount: never written.
      if (r.code !== 126) expect(JSON.parse(r.stdout).exitCode, cmd).not.toBe(0);
    }
    expect(readFileSync(join(ws, '.envrc'), 'utf8')).toBe('export SAFE=1\n');
    expect(readFileSync(join(ws, '.git', 'config'), 'utf8')).not.toContain('fsmonitor');
    expect(existsSync(join(ws, '.git', 'hooks', 'post-commit'))).toBe(false);
    expect(existsSync(join(ws, '.git', 'hooks', 'pre-commit'))).toBe(false);
  });

  it('a trusted interpreter is stopped by the mounts, and what it creates is quarantined', () => {
    const r = agent('python3 scripts/test.py');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { exitCode: number; stdout: string; stderr: string };
    const report = JSON.parse(out.stdout) as Record<string, string>;
    // Refused inside the guest by the mounts themselves.
    for (const k of [
      'hook',
      'hook-new',
      'config',
      'rename-git',
      'rm-hooks',
      'envrc',
      'hooksdir-swap',
      'info',
    ])
      expect(report[k], `${k}: ${report[k]}`).toMatch(/^refused/);
    // Created in the guest, then moved out of the workspace by the host before anything ran it.
    for (const p of ['nested/.git', 'sub/.envrc', '.vscode', '.git/commondir'])
      expect(existsSync(join(ws, p)), p).toBe(false);
    expect(out.stderr).toMatch(/nested\/\.git was created in the guest; it is protected/);
    expect(out.stderr).toContain('quarantine');
    const tl = cli(['timeline', '--json', '--workspace', ws], t.env);
    const events = (JSON.parse(tl.stdout) as { type: string }[]).filter(
      (e: { type: string }) => e.type === 'workspace.protected_change',
    );
    expect(events.map((e: { data: { path: string } }) => e.data.path)).toEqual(
      expect.arrayContaining(['nested/.git', 'sub/.envrc', '.vscode', '.git/commondir']),
    );
  });

  it('a protected path created by a background process after the command ended is quarantined too', async () => {
    const r = agent(
      `echo started; nohup python3 -c "import time,os,subprocess; time.sleep(3); os.makedirs('late', exist_ok=True); open('late/.envrc','w').write('touch ${canary}')" >/dev/null 2>&1 &`,
    );
    expect([0, 126]).toContain(r.code);
    if (r.code === 126) {
      // The policy would not let the agent start it: run the same thing as the user would.
      const l = cli(
        [
          'exec',
          '--workspace',
          ws,
          '--',
          `nohup python3 -c "import time,os; time.sleep(3); os.makedirs('late', exist_ok=True); open('late/.envrc','w').write('touch ${canary}')" >/dev/null 2>&1 &`,
        ],
        t.env,
      );
      expect(l.code, l.stderr).toBe(0);
    }
    await waitFor(
      () => cli(['timeline', '--json', '--workspace', ws], t.env).stdout.includes('late/.envrc'),
      'the timeline to record late/.envrc as quarantined',
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    expect(existsSync(join(ws, 'late', '.envrc'))).toBe(false);
  });

  it('git inside the guest still works (status, commit, branch)', () => {
    const r = cli(
      [
        'exec',
        '--workspace',
        ws,
        '--',
        'cd /workspace && echo change >> README.md && git -c user.name=a -c user.email=a@b.test commit -qam guest && git branch feature && git status --short && git log --oneline | wc -l',
      ],
      t.env,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').pop()).toBe('2');
  });

  it('the host runs git status, commit and checkout in the workspace and nothing of the guest runs', () => {
    expect(git(['status']).status).toBe(0);
    writeFileSync(join(ws, 'host.txt'), 'x\n');
    expect(git(['add', 'host.txt']).status).toBe(0);
    expect(git(['commit', '-qm', 'host']).status).toBe(0);
    expect(git(['checkout', '-q', '-b', 'other']).status).toBe(0);
    expect(git(['checkout', '-q', 'main']).status).toBe(0);
    if (existsSync(join(ws, 'nested'))) git(['status'], join(ws, 'nested'));
    expect(existsSync(canary)).toBe(false);
  });
});

/** The trusted script: every attack, each reported as "refused: …" or "done". */
function attackScript(canary: string): string {
  const hook = `#!/bin/sh\\ntouch ${canary}\\n`;
  return `import json, os, shutil, subprocess
r = {}
def attempt(name, fn):
    try:
        fn()
        r[name] = 'done'
    except Exception as e:
        r[name] = 'refused: %s' % e
def write(path, text, mode=0o755):
    with open(path, 'w') as f:
        f.write(text)
    os.chmod(path, mode)
attempt('hook', lambda: write('.git/hooks/post-commit', "${hook}"))
attempt('hook-new', lambda: write('.git/hooks/post-checkout', "${hook}"))
attempt('config', lambda: open('.git/config', 'a').write('[core]\\n\\tfsmonitor = touch ${canary}\\n'))
attempt('info', lambda: write('.git/info/attributes', '* filter=evil\\n', 0o644))
attempt('rename-git', lambda: os.rename('.git', '.git-old'))
attempt('rm-hooks', lambda: shutil.rmtree('.git/hooks'))
def swap_hooks():
    os.makedirs('evilhooks', exist_ok=True)
    write('evilhooks/post-commit', "${hook}")
    os.rename('.git/hooks', '.git/hooks-old')
attempt('hooksdir-swap', swap_hooks)
attempt('envrc', lambda: write('.envrc', 'touch ${canary}\\n', 0o644))
def nested():
    subprocess.run(['git', 'init', '-q', 'nested'], check=True)
    write('nested/.git/hooks/post-checkout', "${hook}")
    write('nested/.git/hooks/pre-commit', "${hook}")
    open('nested/.git/config', 'a').write('[core]\\n\\tfsmonitor = touch ${canary}\\n')
attempt('nested', nested)
def sub_envrc():
    os.makedirs('sub', exist_ok=True)
    write('sub/.envrc', 'touch ${canary}\\n', 0o644)
attempt('sub-envrc', sub_envrc)
def vscode():
    os.makedirs('.vscode', exist_ok=True)
    write('.vscode/tasks.json', '{"version":"2.0.0","tasks":[{"label":"x","command":"touch ${canary}","runOptions":{"runOn":"folderOpen"}}]}', 0o644)
attempt('vscode', vscode)
attempt('commondir', lambda: write('.git/commondir', '../nested/.git\\n', 0o644))
print(json.dumps(r))
`;
}
