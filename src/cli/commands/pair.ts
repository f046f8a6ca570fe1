import type { Command } from 'commander';
import type { Role } from '../../host/api/roles.js';
import { CoworkError } from '../../host/errors.js';
import { action, addExamples, printJson } from '../common.js';

export function register(program: Command): void {
  const cmd = program
    .command('pair')
    .description(
      'Show a one-time code (valid 5 minutes) that pairs a new device or Telegram account with this host',
    )
    .option('--role <role>', 'what the paired device may do: viewer, operator or admin', 'operator')
    .option('--json', 'print machine-readable JSON')
    .action(
      action(async (flags: { role: string; json?: boolean }) => {
        const [{ createPairingCode }, { ROLES }] = await Promise.all([
          import('../../host/control/devices.js'),
          import('../../host/api/roles.js'),
        ]);
        if (!(ROLES as readonly string[]).includes(flags.role)) {
          throw new CoworkError('invalidArgument', `--role ${flags.role} is not one of ${ROLES.join(', ')}`);
        }
        const role = flags.role as Role;
        const { code, expiresAt } = createPairingCode({ role });
        if (flags.json) return printJson({ code, role, expiresAt: new Date(expiresAt).toISOString() });
        process.stdout.write(
          `pairing code: ${code}\n` +
            `  role ${role} · single use · expires ${new Date(expiresAt).toLocaleTimeString()} (5 minutes)\n` +
            '  Telegram: send "/pair ' +
            code +
            '" to the bot in a private chat · dashboard/menubar: enter it when asked\n',
        );
      }),
    );
  addExamples(cmd, ['cowork-vm pair', 'cowork-vm pair --role viewer', 'cowork-vm pair --role admin --json']);
}
