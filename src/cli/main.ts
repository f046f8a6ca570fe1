import { Command, CommanderError } from './commander.js';
import { registerCommands } from './commands/index.js';
import { fail } from './common.js';

/**
 * `cowork-vm`: parsing and printing only. Each command calls one function of src/host; the
 * same functions serve the control API, so the terminal, the dashboard and channels agree.
 */
const program = new Command('cowork-vm')
  .description(
    "Run an AI agent's shell and browser tools inside a throwaway Linux VM.\n" +
      'Policy, approvals, budgets, secrets and the timeline stay on this host.',
  )
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

await registerCommands(program, process.argv.slice(2));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help / --version exit 0; usage errors exit 64 (EX_USAGE).
    process.exit(err.exitCode === 0 ? 0 : 64);
  }
  fail(err);
}
