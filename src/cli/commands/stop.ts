import { join } from 'node:path';
import type { Command } from 'commander';
import { CoworkError } from '../../host/errors.js';
import { action, addExamples, connectController, locate, printJson } from '../common.js';

export function register(program: Command): void {
  const cmd = program
    .command('stop')
    .description('Stop the sandbox of a workspace (the guest is powered off; workspace files stay)')
    .option('-w, --workspace <dir>', 'workspace folder (default: current directory)')
    .option('--timeout <seconds>', 'how long to wait for a clean stop (default 60)', '60')
    .option('--json', 'print {stopped, workspace} as JSON')
    .action(
      action(async (flags: { workspace?: string; timeout: string; json?: boolean }) => {
        const loc = await locate(flags.workspace);
        const { processAlive, readLock } = await import('../../host/sandbox/index.js');
        const { client } = await connectController(flags.workspace);
        const holder = readLock(join(loc.stateDir, 'lock'));
        try {
          await client.call('stop');
        } finally {
          client.close();
        }
        // The controller releases its lock when the VM is gone: wait for that.
        const deadline = Date.now() + Number(flags.timeout) * 1000;
        while (
          holder &&
          processAlive(holder.pid) &&
          readLock(join(loc.stateDir, 'lock'))?.pid === holder.pid
        ) {
          if (Date.now() > deadline) {
            throw new CoworkError(
              'timeout',
              `the sandbox (pid ${holder.pid}) did not stop within ${flags.timeout} s — kill it with: kill ${holder.pid}`,
            );
          }
          await new Promise((r) => setTimeout(r, 200));
        }
        if (flags.json) printJson({ stopped: true, workspace: loc.workspace });
        else process.stdout.write(`○ sandbox stopped for ${loc.workspace}\n`);
      }),
    );
  addExamples(cmd, ['cowork-vm stop', 'cowork-vm stop --workspace ~/src/app']);
}
