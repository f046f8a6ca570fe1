import { constants } from 'node:os';
import type { Command } from 'commander';
import type { ApiClient } from '../../host/api/client.js';
import type { ResultOf } from '../../host/api/contract.js';
import { PARAM_LIMITS } from '../../host/api/limits.js';
import { CoworkError } from '../../host/errors.js';
import { Option } from '../commander.js';
import { action, addExamples, connectController, intOption, printJson } from '../common.js';

interface ExecFlags {
  workspace?: string;
  json?: boolean;
  timeout?: number;
  context?: 'local' | 'agent' | 'gateway';
  cwd?: string;
  stdin?: boolean;
  maxOutput?: number;
  background?: boolean;
}

type ExecOutcome = ResultOf<'exec'>;
type ExecResult = NonNullable<ExecOutcome['result']>;

const MAX_OUTPUT_MIB = PARAM_LIMITS.maxOutputBytes / 1024 / 1024;

export function register(program: Command): void {
  const cmd = defineOptions(
    program
      .command('exec')
      .description(
        "Run a command in the sandbox's guest (through the policy engine) and exit with its exit code",
      )
      .argument(
        '<command...>',
        "the command; words are joined with spaces and run by the guest's shell, like ssh",
      ),
  ).action(action(execCommand));
  addExamples(cmd, [
    "cowork-vm exec -- 'echo hi > /workspace/hello.txt && uname -a'",
    'cowork-vm exec --json -- ls -la',
    'cowork-vm exec --context agent -- npm test      # asks for approval unless a rule allows it',
    'echo data | cowork-vm exec -i -- wc -c',
    'cowork-vm exec --background -- python3 -m http.server 8000   # prints the job id; see `cowork-vm jobs`',
  ]);
}

/** The option table; its ranges are the contract's (PARAM_LIMITS), so the socket never refuses what is offered here. */
function defineOptions(cmd: Command): Command {
  return cmd
    .option('-w, --workspace <dir>', 'workspace folder (default: current directory)')
    .option('--json', 'print {exitCode, signal, stdout, stderr, truncated, durationMs} instead of streaming')
    .option(
      '-t, --timeout <seconds>',
      `kill the command after this many seconds (1–${PARAM_LIMITS.maxTimeoutMs / 1000})`,
      intOption('--timeout', 1, PARAM_LIMITS.maxTimeoutMs / 1000),
    )
    .addOption(
      new Option('--context <context>', 'policy context to evaluate in (agent: ask unless allowed by a rule)')
        .choices(['local', 'agent', 'gateway'])
        .default('local'),
    )
    .option('--cwd <dir>', 'working directory in the guest (default /workspace)')
    .option('-i, --stdin', "forward this process's standard input to the command (at most 1 MiB)")
    .option(
      '-b, --background',
      'run it as a background job: print its id and return (`cowork-vm jobs`, `logs`, `kill`); it dies with the sandbox',
    )
    .option(
      '--max-output <bytes>',
      `cap per stream (default 1 MiB, at most ${MAX_OUTPUT_MIB} MiB)`,
      intOption('--max-output', 1024, PARAM_LIMITS.maxOutputBytes),
    );
}

async function execCommand(words: string[], flags: ExecFlags): Promise<void> {
  if (flags.background) return backgroundCommand(words, flags);
  const stdin = flags.stdin ? await readStdin() : undefined;
  const { client } = await connectController(flags.workspace);
  const outcome = await runInGuest(client, words.join(' '), stdin, flags);
  if (!outcome.result) reportDenied(outcome, flags);
  const r = outcome.result;
  reportResult(r, flags);
  await new Promise((res) => process.stdout.write('', res));
  process.exit(exitStatus(r));
}

async function backgroundCommand(words: string[], flags: ExecFlags): Promise<void> {
  if (flags.stdin || flags.maxOutput !== undefined) {
    throw new CoworkError(
      'invalidArgument',
      '--background takes no --stdin or --max-output: a job reads nothing and its output is kept by the host (`cowork-vm logs JOB`)',
    );
  }
  const [{ startBackground }, { client }] = await Promise.all([
    import('./jobs.js'),
    connectController(flags.workspace),
  ]);
  await startBackground(client, words.join(' '), flags);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.length > PARAM_LIMITS.stdinChars) {
    throw new CoworkError(
      'limitExceeded',
      `--stdin input is ${text.length} characters; the limit is ${PARAM_LIMITS.stdinChars} (1 MiB) — put larger data in the workspace and read it from there`,
    );
  }
  return text;
}

/** One exec call; Ctrl-C cancels it (the guest's process group is killed). Output streams unless --json. */
async function runInGuest(
  client: ApiClient<'local'>,
  command: string,
  stdin: string | undefined,
  flags: ExecFlags,
): Promise<ExecOutcome> {
  const ac = new AbortController();
  const onInt = () => ac.abort();
  process.once('SIGINT', onInt);
  try {
    return await client.call(
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
        onOutput: flags.json
          ? undefined
          : (stream, chunk) => (stream === 'stdout' ? process.stdout : process.stderr).write(chunk),
      },
    );
  } finally {
    process.off('SIGINT', onInt);
    client.close();
  }
}

function reportDenied(outcome: ExecOutcome, flags: ExecFlags): never {
  const reason = outcome.deniedReason ?? outcome.decision.reasons.join('; ');
  if (flags.json) printJson({ denied: true, decision: outcome.decision, reason });
  else process.stderr.write(`cowork-vm: denied: ${reason}\n`);
  process.exit(126);
}

function reportResult(r: ExecResult, flags: ExecFlags): void {
  if (flags.json) {
    const { exitCode, signal, stdout, stderr, truncated, durationMs, timedOut } = r;
    printJson({ exitCode, signal, stdout, stderr, truncated, durationMs, timedOut });
    return;
  }
  if (r.truncated) process.stderr.write('cowork-vm: output was truncated at the cap (--max-output)\n');
  if (r.timedOut)
    process.stderr.write(`cowork-vm: command timed out after ${flags.timeout} s and was killed\n`);
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
