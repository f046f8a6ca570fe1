import type { Command } from 'commander';
import { action, addExamples, printJson } from '../common.js';

interface DiffFlags {
  workspace?: string;
  config?: string;
  stat?: boolean;
  json?: boolean;
}

/**
 * What a task (or an agent command, or an undo) changed in the workspace: its checkpoint before
 * against its end — or against the workspace now, when its end was never recorded (still running,
 * or the controller was killed). Reads the state dir directly, so it works with the sandbox stopped.
 */
export function register(program: Command): void {
  const cmd = program
    .command('diff')
    .description(
      'Show what a task changed in the workspace (shell side effects included), from its checkpoints',
    )
    .argument('[task]', 'a task id or checkpoint id (default: the newest checkpoint)')
    .option('-w, --workspace <dir>', 'workspace folder (default: current directory)')
    .option('--config <file>', 'config file (default: ~/.config/cowork-vm/config.toml)')
    .option('--stat', 'only the changed paths and line counts, no patch')
    .option('--json', 'the change set as JSON (with the patch unless --stat)')
    .action(
      action(async (id: string | undefined, flags: DiffFlags) => {
        const [{ openWorkspaceCheckpoints, pickCheckpoint }, { describeChange, countsLine }] =
          await Promise.all([
            import('../../host/checkpoints/open.js'),
            import('../../host/checkpoints/index.js'),
          ]);
        const { store } = await openWorkspaceCheckpoints({
          workspace: flags.workspace,
          configFile: flags.config,
        });
        const d = await store.diff(pickCheckpoint(store, id).id);
        const patch = await store.patch(d, { stat: flags.stat });
        const link = (oid: string) => store.blob(oid).toString('utf8');
        if (flags.json) {
          const changes = d.changes.map((c) => ({
            ...c,
            ...(c.after?.kind === 'link' ? { linkTarget: link(c.after.oid) } : {}),
          }));
          return printJson({
            checkpoint: d.record,
            live: d.live,
            counts: d.counts,
            changes,
            skipped: d.skipped,
            ...(flags.stat ? { stat: patch } : { patch }),
          });
        }
        const r = d.record;
        const end = d.live
          ? 'now (its end was never recorded: still running, or the controller stopped before it ended)'
          : `its end (${r.after?.at})`;
        process.stdout.write(
          `${r.id} (${r.kind}: ${r.label}) — before ${r.before.at} → ${end}\n${countsLine(d.counts)}\n`,
        );
        for (const c of d.changes) process.stdout.write(`${describeChange(c, link)}\n`);
        for (const s of d.skipped)
          process.stdout.write(`?  ${s.path} — not checkpointed (${s.reason}); changes to it are unknown\n`);
        if (patch) process.stdout.write(`\n${patch}`);
      }),
    );
  addExamples(cmd, [
    'cowork-vm diff                 # the newest task or agent command',
    'cowork-vm diff t-8f3k2a --stat',
    'cowork-vm diff t-8f3k2a --json | jq ".changes[].path"',
  ]);
  cmd.addHelpText(
    'after',
    '\nLetters: A created, D deleted, M modified (bytes or link target), m permission bits only, T file <-> link.\n',
  );
}
