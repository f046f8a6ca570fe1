import { constants } from 'node:os';
import { type Command, Option } from 'commander';
import type { ExecOutcome } from '../../host/control/api.js';
import { action, addExamples, connectController, intOption, printJson } from '../common.js';

interface ExecFlags {
  workspace?: string;
  json?: boolean;
  timeout?: number;
  context?: 'local' | 'agent' | 'gateway';
  cwd?: string;
  stdin?: boolean;
  maxOutput?: number;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export function register(program: Command): void {
  const cmd = program
    .command('exec')
    .description(
      "Run a command in the sandbox's guest (through the policy engine) and exit with its exit code",
    )
    .argument(
      '<command...>',
      "the command; words are joined with spaces and run by the guest's shell, like ssh",
    )
    .option('-w, --workspace <dir>', 'workspace folder (default: current directory)')
    .option('--json', 'print {exitCode, signal, stdout, stderr, truncated, durationMs} instead of streaming')
    .option(
      '-t, --timeout <seconds>',
      'kill the command after this many seconds (1–86400)',
      intOption('--timeout', 1, 86_400),
    )
    .addOption(
      new Option('--context <context>', 'policy context to evaluate in (agent: ask unless allowed by a rule)')
        .choices(['local', 'agent', 'gateway'])
        .default('local'),
    )
    .option('--cwd <dir>', 'working directory in the guest (default /workspace)')
    .option('-i, --stdin', "forward this process's standard input to the command")
    .option(
      '--max-output <bytes>',
      'cap per stream (default 1 MiB)',
      intOption('--max-output', 1024, 1 << 30),
    )
    .action(
      action(async (words: string[], flags: ExecFlags) => {
        const command = words.join(' ');
        const stdin = flags.stdin ? await readStdin() : undefined;
        const { client } = await connectController(flags.workspace);
        const ac = new AbortController();
        const onInt = () => ac.abort();
        process.once('SIGINT', onInt);
        let outcome: ExecOutcome;
        try {
          outcome = await client.call<ExecOutcome>(
            'exec',
            {
              command,
              context: flags.context ?? 'local',
              cwd: flags.cwd,
              timeoutMs: flags.timeout ? flags.timeout * 1000 : undefined,
              maxOutputBytes: flags.maxOutput,
              stdin,
            },
            {
              signal: ac.signal,
              onStream: flags.json
                ? undefined
                : (stream, chunk) => (stream === 'stdout' ? process.stdout : process.stderr).write(chunk),
              onEvent: undefined,
            },
          );
        } finally {
          process.off('SIGINT', onInt);
          client.close();
        }
        if (!outcome.result) {
          const reason = outcome.deniedReason ?? outcome.decision.reasons.join('; ');
          if (flags.json) printJson({ denied: true, decision: outcome.decision, reason });
          else process.stderr.write(`cowork-vm: denied: ${reason}\n`);
          process.exit(126);
        }
        const r = outcome.result;
        if (flags.json) {
          const { exitCode, signal, stdout, stderr, truncated, durationMs, timedOut } = r;
          printJson({ exitCode, signal, stdout, stderr, truncated, durationMs, timedOut });
        } else {
          if (r.truncated)
            process.stderr.write('cowork-vm: output was truncated at the cap (--max-output)\n');
          if (r.timedOut)
            process.stderr.write(`cowork-vm: command timed out after ${flags.timeout} s and was killed\n`);
        }
        await new Promise((res) => process.stdout.write('', res));
        process.exit(exitStatus(r));
      }),
    );
  addExamples(cmd, [
    "cowork-vm exec -- 'echo hi > /workspace/hello.txt && uname -a'",
    'cowork-vm exec --json -- ls -la',
    'cowork-vm exec --context agent -- npm test      # asks for approval unless a rule allows it',
    'echo data | cowork-vm exec -i -- wc -c',
  ]);
}

/** The guest's exit code; 124 on timeout; 128+N when killed by signal N (like a shell). */
export function exitStatus(r: {
  exitCode: number | null;
  signal: string | null;
  timedOut?: boolean;
}): number {
  if (r.timedOut) return 124;
  if (r.exitCode !== null) return r.exitCode;
  const n = r.signal ? (constants.signals as Record<string, number>)[`SIG${r.signal}`] : undefined;
  return 128 + (n ?? 1);
}
