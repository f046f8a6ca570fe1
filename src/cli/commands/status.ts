import type { Command } from 'commander';
import type { StatusInfo } from '../../host/api/controller.js';
import { CoworkError } from '../../host/errors.js';
import { action, addExamples, connectController, humanMs, locate, printJson } from '../common.js';

/** Exit status of `status` when no sandbox runs (like `systemctl status` for an inactive unit). */
export const NOT_RUNNING_EXIT = 3;

export function register(program: Command): void {
  const cmd = program
    .command('status')
    .description(
      `Show the sandbox of a workspace: VM state, accelerator, share, approvals (exit ${NOT_RUNNING_EXIT} when none runs)`,
    )
    .option('-w, --workspace <dir>', 'workspace folder (default: current directory)')
    .option('--json', 'print machine-readable JSON')
    .action(
      action(async (flags: { workspace?: string; json?: boolean }) => {
        let st: StatusInfo;
        try {
          const { client } = await connectController(flags.workspace);
          try {
            st = await client.call('status');
          } finally {
            client.close();
          }
        } catch (err) {
          if (!CoworkError.is(err, 'invalidState')) throw err;
          const loc = await locate(flags.workspace);
          if (flags.json) printJson({ workspace: loc.workspace, state: 'stopped' });
          else
            process.stdout.write(
              `○ no sandbox running for ${loc.workspace} — start one with \`cowork-vm start --detach\`\n`,
            );
          process.exit(NOT_RUNNING_EXIT);
        }
        if (flags.json) return printJson(st);
        const v = st.vm;
        const { bootStepsSummary } = await import('../../host/vm/boot-steps.js');
        process.stdout.write(
          [
            `● ${st.state} — ${st.workspace}`,
            `  controller pid ${st.pid} · VM pid ${v.pid ?? '?'} (${v.driver})`,
            `  accel ${v.accel} · workspace share ${v.share} · image ${v.image}${v.imageHash ? ` (${v.imageHash.slice(0, 12)})` : ''}`,
            `  ${v.cpus} cpu · ${v.memoryMiB} MiB · ssh 127.0.0.1:${v.sshPort} · booted in ${humanMs(v.bootMs ?? 0)} at ${v.startedAt}`,
            ...(v.bootSteps ? [`  where the boot went (guest s): ${bootStepsSummary(v.bootSteps)}`] : []),
            `  egress proxy: ${st.egress?.listening ? `127.0.0.1:${st.egress.port}` : 'off (guest has no network)'}`,
            `  control API: ${st.control?.listen ?? 'off'}`,
            `  dashboard: ${st.dashboard ? `${st.dashboard.url} (log in with \`cowork-vm dashboard\`)` : 'off'}`,
            `  pending approvals: ${st.pendingApprovals} · running tasks: ${st.tasks.running} · background jobs: ${st.jobs?.running ?? 0}`,
            `  cache disk: ${st.cache ? `${st.cache.name} (${st.cache.kind}, up to ${(st.cache.sizeBytes / 1024 ** 3).toFixed(0)} GiB)` : 'none'}`,
            `  forwards: ${st.forwards?.length ? st.forwards.map((f) => `guest ${f.guestPort} → ${f.url}`).join(', ') : 'none'}`,
          ].join('\n') + '\n',
        );
      }),
    );
  addExamples(cmd, ['cowork-vm status', 'cowork-vm status --json | jq .vm.share']);
}
