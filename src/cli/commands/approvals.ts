import type { Command } from 'commander';
import { action, addExamples, connectController, printJson } from '../common.js';

export function register(program: Command): void {
  const list = program
    .command('approvals')
    .description('List commands and tool calls waiting for your approval')
    .option('-w, --workspace <dir>', 'workspace folder (default: current directory)')
    .option('--json', 'print machine-readable JSON')
    .action(
      action(async (flags: { workspace?: string; json?: boolean }) => {
        const { client } = await connectController(flags.workspace);
        const pending = await client.call('approvals.list').finally(() => client.close());
        if (flags.json) return printJson(pending);
        if (pending.length === 0) return void process.stdout.write('no pending approvals\n');
        for (const p of pending) {
          const what = p.command ?? JSON.stringify(p.input);
          const left = Math.max(0, Math.round((p.expiresAt - Date.now()) / 1000));
          process.stdout.write(
            `${p.id}  [${p.context}] ${p.tool} (${p.risk})${p.taskId ? ` task ${p.taskId}` : ''}\n` +
              `      ${what}\n      cwd ${p.cwd ?? '/workspace'} · why: ${p.reasons.join('; ')} · expires in ${left} s\n`,
          );
        }
        process.stdout.write(
          'answer with: cowork-vm approve ID [--task] | cowork-vm deny ID [--message M]\n',
        );
      }),
    );
  addExamples(list, ['cowork-vm approvals', 'cowork-vm approvals --json']);

  const approve = program
    .command('approve')
    .description('Approve a pending command (once, or for the rest of its task with --task)')
    .argument('<id>', 'approval id from `cowork-vm approvals`')
    .option('-w, --workspace <dir>', 'workspace folder (default: current directory)')
    .option('--task', 'approve this exact command for the rest of the task')
    .action(
      action(async (id: string, flags: { workspace?: string; task?: boolean }) => {
        const { client } = await connectController(flags.workspace);
        const kind = flags.task ? 'approve-task' : 'approve-once';
        await client.call('approvals.answer', { id, kind }).finally(() => client.close());
        process.stdout.write(`approved ${id}${flags.task ? ' for the rest of the task' : ''}\n`);
      }),
    );
  addExamples(approve, ['cowork-vm approve a7k2', 'cowork-vm approve a7k2 --task']);

  const deny = program
    .command('deny')
    .description('Deny a pending command; the message (if any) is passed to the agent')
    .argument('<id>', 'approval id from `cowork-vm approvals`')
    .option('-w, --workspace <dir>', 'workspace folder (default: current directory)')
    .option('-m, --message <text>', 'why, for the agent')
    .action(
      action(async (id: string, flags: { workspace?: string; message?: string }) => {
        const { client } = await connectController(flags.workspace);
        await client
          .call('approvals.answer', { id, kind: 'deny', message: flags.message })
          .finally(() => client.close());
        process.stdout.write(`denied ${id}\n`);
      }),
    );
  addExamples(deny, ['cowork-vm deny a7k2', 'cowork-vm deny a7k2 --message "use the test database instead"']);
}
