import type { Command } from 'commander';
import { action, addExamples, printJson } from '../common.js';

export function register(program: Command): void {
  const cmd = program
    .command('doctor')
    .description(
      'Check this host: qemu, virtiofsd, mmdebstrap, accelerator verdict, images — with the fix for each',
    )
    .option('--accel <accel>', 'check this accelerator instead of auto')
    .option('--json', 'print machine-readable JSON')
    .action(
      action(async (flags: { accel?: string; json?: boolean }) => {
        const [{ runDoctor }, { parseAccel }] = await Promise.all([
          import('../../host/doctor.js'),
          import('../../host/vm/index.js'),
        ]);
        const checks = await runDoctor({
          accel: flags.accel ? parseAccel(flags.accel, '--accel') : undefined,
        });
        const ok = checks.every((c) => c.ok);
        if (flags.json) printJson({ ok, checks });
        else {
          for (const c of checks) {
            process.stdout.write(
              `${c.ok ? '✓' : '✗'} ${c.name}: ${c.detail}\n${c.fix && !c.ok ? `    fix: ${c.fix}\n` : ''}`,
            );
          }
          process.stdout.write(ok ? 'all good\n' : 'some checks failed — see the fixes above\n');
        }
        process.exitCode = ok ? 0 : 1;
      }),
    );
  addExamples(cmd, ['cowork-vm doctor', 'cowork-vm doctor --json']);
}
