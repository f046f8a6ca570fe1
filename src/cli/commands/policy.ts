import { resolve } from 'node:path';
import type { Command } from 'commander';
import { CoworkError } from '../../host/errors.js';
import type { PolicyRequest } from '../../host/policy/index.js';
// A leaf module (no imports): the choices of --risk, without loading the policy engine.
import { RISKS, type Risk } from '../../host/policy/types.js';
import { Option } from '../commander.js';
import { action, addExamples, printJson } from '../common.js';

interface CheckFlags {
  json?: boolean;
  context?: 'local' | 'agent' | 'gateway';
  config?: string;
  workspace?: string;
  tool?: string;
  input?: string;
  risk?: Risk;
}

function toolRequest(flags: CheckFlags): PolicyRequest {
  if (!flags.risk)
    throw new CoworkError(
      'invalidArgument',
      '--risk is required with --tool (read, write, destructive, system or network)',
    );
  let input: unknown = {};
  if (flags.input !== undefined) {
    try {
      input = JSON.parse(flags.input);
    } catch (err) {
      throw new CoworkError('invalidArgument', `--input is not valid JSON (${(err as Error).message})`, err);
    }
  }
  const path = input && typeof input === 'object' ? (input as { path?: unknown }).path : undefined;
  const access = flags.risk === 'read' ? 'read' : 'write';
  return {
    kind: 'tool',
    tool: flags.tool as string,
    risk: flags.risk,
    input,
    ...(typeof path === 'string' ? { paths: [{ path, access }] } : {}),
  };
}

/** `cowork-vm policy check`: print the decision without running anything; exit 0 allow, 1 ask, 2 deny. */
export function register(program: Command): void {
  const policy = program.command('policy').description('Inspect the policy engine');
  const check = policy
    .command('check')
    .description(
      'Print the policy decision for a command or tool call, without running it (exit 0 allow, 1 ask, 2 deny)',
    )
    .argument('[command...]', 'the shell command (after --)')
    .option('--json', 'print {effect, reasons, layer, rule}')
    .addOption(
      new Option('--context <context>', 'who is asking')
        .choices(['local', 'agent', 'gateway'])
        .default('agent'),
    )
    .option('--config <file>', 'config file instead of the user config.toml')
    .option(
      '-w, --workspace <dir>',
      'workspace folder (default: current directory); its .cowork/config.toml may only tighten',
    )
    .option('--tool <name>', 'check a tool call instead of a shell command')
    .option('--input <json>', 'the tool input as JSON (a "path" field is checked by the path guard)')
    .addOption(new Option('--risk <risk>', 'the tool risk').choices([...RISKS]))
    .action(
      action(async (words: string[], flags: CheckFlags) => {
        const workspace = resolve(flags.workspace ?? process.cwd());
        if (flags.tool === undefined && words.length === 0)
          throw new CoworkError('invalidArgument', 'give a command after -- or --tool NAME');
        if (flags.tool !== undefined && words.length > 0)
          throw new CoworkError('invalidArgument', 'give either a command or --tool, not both');
        const [{ loadConfig }, { checkPolicy, DECISION_EXIT_CODES }] = await Promise.all([
          import('../../host/config/index.js'),
          import('../../host/policy/index.js'),
        ]);
        const { config, warnings } = loadConfig({ configFile: flags.config, workspace });
        for (const w of warnings) process.stderr.write(`cowork-vm: warning: ${w}\n`);
        const request = flags.tool !== undefined ? toolRequest(flags) : words.join(' ');
        const d = checkPolicy({ request, context: flags.context ?? 'agent', config, workspace });
        if (flags.json)
          printJson({ effect: d.effect, reasons: d.reasons, layer: d.layer, rule: d.rule ?? null });
        else {
          process.stdout.write(`${d.effect} (layer: ${d.layer}${d.rule ? `, rule: ${d.rule}` : ''})\n`);
          for (const r of d.reasons) process.stdout.write(`  - ${r}\n`);
        }
        process.exitCode = DECISION_EXIT_CODES[d.effect];
      }),
    );
  addExamples(check, [
    'cowork-vm policy check -- git status',
    "cowork-vm policy check --json --context gateway -- 'curl x | sh'",
    'cowork-vm policy check --tool write_file --risk write --input \'{"path":".git/config"}\'',
  ]);
}
