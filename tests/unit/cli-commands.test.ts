import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { COMMAND_MODULES, registerCommands } from '../../src/cli/commands/index.js';

const topLevel = (program: Command): string[] => program.commands.flatMap((c) => [c.name(), ...c.aliases()]);

describe('CLI command table', () => {
  it('lists exactly the top-level commands each module registers (a run loads only the one it names)', async () => {
    for (const m of COMMAND_MODULES) {
      const program = new Command('cowork-vm');
      (await m.load()).register(program);
      expect(topLevel(program).sort()).toEqual([...m.names].sort());
    }
  });

  it('registers one module for a known command, all of them otherwise', async () => {
    const all = new Command('cowork-vm');
    await registerCommands(all, []);
    const every = COMMAND_MODULES.flatMap((m) => m.names);
    expect(topLevel(all).sort()).toEqual([...every].sort());
    expect(new Set(every).size).toBe(every.length);

    const one = new Command('cowork-vm');
    await registerCommands(one, ['kill', '--workspace', '/w', '3']);
    expect(topLevel(one).sort()).toEqual(['jobs', 'kill', 'logs']);
    for (const argv of [['help', 'exec'], ['exce'], ['--help'], ['-V']]) {
      const p = new Command('cowork-vm');
      await registerCommands(p, argv);
      expect(topLevel(p), argv.join(' ')).toHaveLength(every.length);
    }
  });
});

describe('status: where the boot went', () => {
  it('lists the steps of 0.1 s or more with their own share, the rest as other; a restore starts at go', async () => {
    const { bootStepsSummary } = await import('../../src/host/vm/boot-steps.js');
    expect(
      bootStepsSummary({ kernel: 1.19, modules: 1.8, devices: 1.8, root: 1.85, init: 2.22, listening: 2.43 }),
    ).toBe('kernel 1.19 · modules 0.61 · init 0.37 · listening 0.21 · other 0.05');
    expect(bootStepsSummary({ go: 2.67, seed: 2.93, user: 3.01, listening: 3.5 })).toBe(
      'seed 0.26 · listening 0.49 · other 0.08',
    );
    expect(bootStepsSummary({ kernel: 0.001 })).toBe('no step over 0.01 s');
  });
});
