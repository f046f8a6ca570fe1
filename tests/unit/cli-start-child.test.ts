import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { childArgs, register } from '../../src/cli/commands/start.js';

/** `start --detach` re-runs itself as `start --child`: what the user gave must reach the child, re-parsed. */
function startCommand(): { program: Command; start: Command; parsed: () => Record<string, unknown> } {
  const program = new Command('cowork-vm').exitOverride();
  register(program);
  const start = program.commands.find((c) => c.name() === 'start')!;
  let flags: Record<string, unknown> = {};
  start.exitOverride().action((f: Record<string, unknown>) => {
    flags = f;
  });
  return { program, start, parsed: () => flags };
}

async function parse(args: string[]) {
  const cmd = startCommand();
  await cmd.program.parseAsync(['node', 'cowork-vm', ...args]);
  return cmd;
}

describe('start --detach → child arguments', () => {
  it('passes every given option on, with the workspace resolved and the parent-only ones dropped', async () => {
    const parent = await parse([
      'start',
      '--detach',
      '--json',
      '-c',
      '/cfg.toml',
      '--cpus',
      '3',
      '--memory',
      '512',
      '--image',
      'browser',
      '--accel',
      'tcg',
      '--share',
      '9p',
      '--listen',
      '127.0.0.1:7420',
      '--allow-remote',
      '-w',
      'relative/ws',
    ]);
    const args = childArgs(parent.start, parent.parsed(), '/abs/ws');
    expect(args.slice(0, 2)).toEqual(['start', '--child']);
    expect(args).not.toContain('--detach');
    expect(args).not.toContain('--json');
    const child = await parse(args);
    const { detach: _d, json: _j, ...given } = parent.parsed();
    expect(child.parsed()).toEqual({ ...given, workspace: '/abs/ws', child: true });
  });

  it('covers the whole option table: any option with a value reaches the child', async () => {
    const { start } = startCommand();
    const flags: Record<string, unknown> = {};
    for (const o of start.options) {
      const key = o.attributeName();
      if (['detach', 'json', 'child'].includes(key)) continue;
      flags[key] = o.isBoolean()
        ? true
        : key === 'cpus'
          ? 2
          : key === 'memory'
            ? 1024
            : key === 'share'
              ? 'virtiofs'
              : `v-${key}`;
    }
    const child = await parse(childArgs(start, flags, '/abs/ws'));
    expect(child.parsed()).toEqual({ ...flags, workspace: '/abs/ws', child: true });
  });

  it('leaves out options the user did not give', async () => {
    const parent = await parse(['start', '--detach']);
    expect(childArgs(parent.start, parent.parsed(), '/w')).toEqual(['start', '--child', '--workspace', '/w']);
  });
});
