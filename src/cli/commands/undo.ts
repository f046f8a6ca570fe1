import type { Command } from 'commander';
import { action, addExamples, printJson } from '../common.js';

interface UndoFlags {
  workspace?: string;
  config?: string;
  force?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  const cmd = program
    .command('undo')
    .description('Put back what a task changed in the workspace, as it was before the task')
    .argument('<task>', 'a task id or checkpoint id (`cowork-vm checkpoints` lists them)')
    .option('-w, --workspace <dir>', 'workspace folder (default: current directory)')
    .option('--config <file>', 'config file (default: ~/.config/cowork-vm/config.toml)')
    .option('--force', 'also overwrite files changed since the task ended (otherwise the undo refuses)')
    .option('--json', 'print the result as JSON')
    .action(
      action(async (id: string, flags: UndoFlags) => {
        const { openWorkspaceCheckpoints } = await import('../../host/checkpoints/open.js');
        const { store, record } = await openWorkspaceCheckpoints({
          workspace: flags.workspace,
          configFile: flags.config,
        });
        const taskId = store.get(id).taskId ?? null;
        const r = await store.undo(id, { force: flags.force });
        record(
          {
            type: 'checkpoint.undone',
            checkpoint: r.undo,
            of: r.of,
            restored: r.restored.length,
            removed: r.removed.length,
            conflicts: r.conflicts.slice(0, 100),
            forced: r.forced,
          },
          taskId,
        );
        if (flags.json) return printJson(r);
        process.stdout.write(
          `undid ${r.of}: ${r.restored.length} restored, ${r.removed.length} removed` +
            `${r.forced ? ` (overwrote changes made since: ${r.conflicts.join(', ')})` : ''}\n` +
            `this undo is checkpoint ${r.undo}: \`cowork-vm undo ${r.undo}\` brings the task's changes back\n`,
        );
      }),
    );
  addExamples(cmd, [
    'cowork-vm undo t-8f3k2a',
    'cowork-vm undo t-8f3k2a --force',
    'cowork-vm undo u-3c9d0e1f2a',
  ]);
  cmd.addHelpText(
    'after',
    '\nExit codes: 0 undone; 75 refused because a file changed since the task (nothing was touched); 66 no such checkpoint.\n',
  );
}
