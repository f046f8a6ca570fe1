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
