import type { Command } from 'commander';
import { action, addExamples, connectController, printJson } from '../common.js';

export function register(program: Command): void {
  const cmd = program
    .command('forward')
    .description("Make a guest port reachable on the host's 127.0.0.1 (over the SSH session; closed at stop)")
    .argument('[spec]', 'GUEST_PORT[:HOST_PORT]; HOST_PORT defaults to GUEST_PORT, 0 = any free port')
    .option('-w, --workspace <dir>', 'workspace folder (default: current directory)')
    .option('--close <hostPort>', 'close the forward listening on this host port instead')
    .option('--json', 'print machine-readable JSON')
    .action(
      action(
        async (spec: string | undefined, flags: { workspace?: string; close?: string; json?: boolean }) => {
          const { parseForwardSpec } = await import('../../host/jobs/forward-spec.js');
          if (flags.close !== undefined) {
            const { hostPort } = parseForwardSpec(`1:${flags.close}`, '--close');
            const { client } = await connectController(flags.workspace);
            const f = await client.call('forward.close', { hostPort }).finally(() => client.close());
            if (flags.json) return printJson(f);
            process.stdout.write(`closed 127.0.0.1:${f.hostPort} (guest port ${f.guestPort})\n`);
            return;
          }
          if (spec === undefined) {
            const { CoworkError } = await import('../../host/errors.js');
            throw new CoworkError(
              'invalidArgument',
              'give the guest port to forward (e.g. `cowork-vm forward 8000`), or --close HOST_PORT; `cowork-vm status` lists the open forwards',
            );
          }
          const want = parseForwardSpec(spec, 'GUEST_PORT[:HOST_PORT]');
          const { client } = await connectController(flags.workspace);
          const f = await client
            .call('forward.open', { guestPort: want.guestPort, hostPort: want.hostPort })
            .finally(() => client.close());
          if (flags.json) return printJson(f);
          process.stdout.write(`${f.url}  →  guest 127.0.0.1:${f.guestPort}\n`);
        },
      ),
    );
  addExamples(cmd, [
    'cowork-vm exec --background -- python3 -m http.server 8000 && cowork-vm forward 8000',
    'cowork-vm forward 3000:13000     # guest 3000 on host 127.0.0.1:13000',
    'cowork-vm forward 8000:0 --json  # any free host port; .hostPort says which',
    'cowork-vm forward --close 13000',
  ]);
}
