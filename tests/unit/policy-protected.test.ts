import { describe, expect, it } from 'vitest';
import { createPolicyEngine, type PolicyContextName } from '../../src/host/policy/index.js';
import { ProtectedPaths } from '../../src/host/workspace/index.js';

/** Shell writes to what the host executes or trusts are denied everywhere; only config changes that. */
const engine = createPolicyEngine({ policy: { allow: ['Bash'] } });
const decide = (command: string, context: PolicyContextName, e = engine, cwd?: string) =>
  e.evaluate({ kind: 'shell', command, ...(cwd ? { cwd } : {}) }, { context, workspace: '/w' });

describe('protected paths in shell commands', () => {
  it.each([
    'echo x > .git/config',
    'echo x >& .git/hooks/post-commit',
    'echo x 1>&.git/hooks/pre-commit',
    'echo x &>> .git/config',
    'echo x >| .git/info/attributes',
    'ls 1<>.git/config',
    'echo x > //workspace/.git/config',
    'echo x > ./sub/../.git/config',
    'echo x > /proc/self/cwd/.git/config',
    'echo x > sub/.git/config',
    'echo x > .git/modules/m/hooks/post-checkout',
    'tee -a .git/config < x',
    'cp evil .git/hooks/',
    'cp -t .git/hooks evil',
    'mv x .git',
    'ln -sf /tmp/x .git/hooks/pre-push',
    "sed -i 's/a/b/' .git/config",
    'touch .envrc',
    'install -m 755 x .git/hooks/pre-commit',
    'dd if=x of=.git/config',
    'sort -o .git/config x',
    'rm -f .git/hooks/pre-commit',
    'echo x > .vscode/tasks.json',
    'find . -fprint .git/config',
    'bash -c "echo x > .git/config"',
  ])('%j is denied in every context, even with everything allowed', (command) => {
    for (const ctx of ['local', 'agent', 'gateway'] as const) {
      const d = decide(command, ctx);
      expect(d.effect, `${ctx}: ${JSON.stringify(d)}`).toBe('deny');
      expect(d.rule).toMatch(/^protected:/);
      expect(d.reasons.join(' ')).toMatch(/only config \(\[workspace\] protect\) can change that/);
    }
  });

  it('a relative target is resolved against the request cwd', () => {
    expect(decide('echo x > config', 'local', engine, '/workspace/.git').effect).toBe('deny');
    expect(decide('echo x > config', 'local', engine, '/workspace/src').effect).toBe('allow');
  });

  it.each([
    'cat .git/config',
    'git log -- .envrc',
    'echo .git/config',
    'ls .git/hooks',
    'echo x > .git-notes',
  ])('%j is not a protected write', (command) => {
    expect(decide(command, 'local').effect).toBe('allow');
  });

  it('approval for the task cannot lift it', () => {
    const d = engine.evaluate(
      { kind: 'shell', command: 'echo x > .envrc' },
      { context: 'agent', workspace: '/w', approvedForTask: new Set(['echo x > .envrc']) },
    );
    expect(d.effect).toBe('deny');
  });

  it('the engine takes the workspace protect list and case folding from its options', () => {
    const e = createPolicyEngine(
      { policy: { allow: ['Bash'] } },
      { protectedPaths: new ProtectedPaths({ patterns: ['Makefile'], caseInsensitive: true }) },
    );
    expect(decide('echo x > Makefile', 'local', e).effect).toBe('deny');
    expect(decide('echo x > .GIT/CONFIG', 'local', e).effect).toBe('deny');
    expect(decide('echo x > .envrc', 'local', e).effect).toBe('allow'); // not in this list
    expect(decide('echo x > .GIT/CONFIG', 'local').effect).toBe('allow'); // case-sensitive default
  });
});
