import type { Command } from 'commander';
/**
 * Every command module exports `register(program)`; the order here is the order in --help.
 * A command module imports only commander, ../common.js and type-only host modules at the top:
 * its implementation is imported inside its action, so --help and --version load nothing else
 * (tests/integration/cli-startup.test.ts checks what the built binary resolves). `names` are
 * the top-level commands (and aliases) each one registers (tests/unit/cli-commands.test.ts
 * checks them): a run that names one loads only that module.
 */
export const COMMAND_MODULES: readonly {
  names: readonly string[];
  load: () => Promise<{ register(program: Command): void }>;
}[] = [
  { names: ['start'], load: () => import('./start.js') },
  { names: ['status'], load: () => import('./status.js') },
  { names: ['exec'], load: () => import('./exec.js') },
  { names: ['jobs', 'logs', 'kill'], load: () => import('./jobs.js') },
  { names: ['forward'], load: () => import('./forward.js') },
  { names: ['run'], load: () => import('./run.js') },
  { names: ['mcp'], load: () => import('./mcp.js') },
  { names: ['models'], load: () => import('./models.js') },
  { names: ['cancel'], load: () => import('./cancel.js') },
  { names: ['stop'], load: () => import('./stop.js') },
  { names: ['approvals', 'approve', 'deny'], load: () => import('./approvals.js') },
  { names: ['tray'], load: () => import('./tray.js') },
  { names: ['dashboard'], load: () => import('./dashboard.js') },
  { names: ['timeline'], load: () => import('./timeline.js') },
  { names: ['diff'], load: () => import('./diff.js') },
  { names: ['undo'], load: () => import('./undo.js') },
  { names: ['checkpoints'], load: () => import('./checkpoints.js') },
  { names: ['policy'], load: () => import('./policy.js') },
  { names: ['pair'], load: () => import('./pair.js') },
  { names: ['devices'], load: () => import('./devices.js') },
  { names: ['secrets'], load: () => import('./secrets.js') },
  { names: ['image'], load: () => import('./image.js') },
  { names: ['cache'], load: () => import('./cache.js') },
  { names: ['doctor'], load: () => import('./doctor.js') },
];

/**
 * Registers the command `argv` names (its first word that is not an option), or every command
 * when it names none, `help`, or one we do not know (so --help lists them all and commander
 * can suggest the nearest name).
 */
export async function registerCommands(program: Command, argv: readonly string[] = []): Promise<void> {
  const first = argv.find((a) => !a.startsWith('-'));
  const one = first === undefined ? undefined : COMMAND_MODULES.find((m) => m.names.includes(first));
  const modules = await Promise.all((one ? [one] : COMMAND_MODULES).map((m) => m.load()));
  for (const m of modules) m.register(program);
}
