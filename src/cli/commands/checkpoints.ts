import type { Command } from 'commander';
import { action, addExamples, printJson } from '../common.js';

export function register(program: Command): void {
  const cmd = program
    .command('checkpoints')
    .description('List the workspace checkpoints: one before every agent task, agent command and undo')
    .option('-w, --workspace <dir>', 'workspace folder (default: current directory)')
    .option('--config <file>', 'config file (default: ~/.config/cowork-vm/config.toml)')
    .option('--json', 'print them as JSON')
    .action(
      action(async (flags: { workspace?: string; config?: string; json?: boolean }) => {
        const { openWorkspaceCheckpoints } = await import('../../host/checkpoints/open.js');
        const { store } = await openWorkspaceCheckpoints({
          workspace: flags.workspace,
          configFile: flags.config,
        });
        const list = store.list();
        if (flags.json) return printJson(list);
        for (const r of list) {
          const end = r.after ? `ended ${r.after.at.replace('T', ' ').slice(0, 19)}` : 'no end recorded';
          const skipped = r.before.skipped ? `, ${r.before.skipped} skipped` : '';
          process.stdout.write(
            `${r.id.padEnd(14)} ${r.kind.padEnd(5)} ${r.before.at.replace('T', ' ').slice(0, 19)}  ${end.padEnd(25)} ${r.before.files} files${skipped}  ${JSON.stringify(r.label).slice(1, -1)}\n`,
          );
        }
      }),
    );
  addExamples(cmd, ['cowork-vm checkpoints', 'cowork-vm checkpoints --json']);
}
