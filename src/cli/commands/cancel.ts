import type { Command } from 'commander';
import { action, addExamples, connectController } from '../common.js';

export function register(program: Command): void {
  const cmd = program
    .command('cancel')
    .description('Cancel a running agent task (aborts its model call and guest command)')
    .argument('<task>', 'task id, as shown by `cowork-vm run` and `cowork-vm timeline`')
    .option('-w, --workspace <dir>', 'workspace folder (default: current directory)')
    .action(
      action(async (task: string, flags: { workspace?: string }) => {
        const { client } = await connectController(flags.workspace);
        await client.call('tasks.cancel', { id: task }).finally(() => client.close());
        process.stdout.write(`cancelling ${task}\n`);
      }),
    );
  addExamples(cmd, ['cowork-vm cancel t-8f3k2a']);
}
