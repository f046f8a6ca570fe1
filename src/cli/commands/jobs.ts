import type { Command } from 'commander';
import type { ApiClient } from '../../host/api/client.js';
import type { ResultOf } from '../../host/api/contract.js';
import { action, addExamples, connectController, printJson } from '../common.js';

/** `jobs`, `logs JOB [--follow]`, `kill JOB`: background jobs started by `exec --background`. */

type JobInfo = ResultOf<'jobs.list'>[number];
type JobStart = ResultOf<'jobs.start'>;

export function register(program: Command): void {
  const jobs = program
    .command('jobs')
    .description('List background jobs (`exec --background`): running ones and the most recent that ended')
    .option('-w, --workspace <dir>', 'workspace folder (default: current directory)')
    .option('--json', 'print machine-readable JSON')
    .action(
      action(async (flags: { workspace?: string; json?: boolean }) => {
        const { client } = await connectController(flags.workspace);
        const list = await client.call('jobs.list').finally(() => client.close());
        if (flags.json) return printJson(list);
        if (list.length === 0) {
          process.stdout.write('no background jobs — start one with `cowork-vm exec --background -- CMD`\n');
          return;
        }
        for (const j of list) process.stdout.write(`${jobLine(j)}\n`);
      }),
    );
  addExamples(jobs, [
    'cowork-vm jobs',
    'cowork-vm jobs --json | jq -r ".[] | select(.state == \\"running\\") | .id"',
  ]);

  const logs = program
    .command('logs')
    .description("Print a background job's output (the host keeps its last 1 MiB); --follow waits for more")
    .argument('<job>', 'job id, as `exec --background` and `cowork-vm jobs` show it')
    .option('-w, --workspace <dir>', 'workspace folder (default: current directory)')
    .option(
      '-f, --follow',
      'keep printing new output until the job ends (Ctrl-C stops following, not the job)',
    )
    .option('--json', 'print the job as JSON after its output (to stderr, so stdout stays the log)')
    .action(
      action(async (id: string, flags: { workspace?: string; follow?: boolean; json?: boolean }) => {
        const { client } = await connectController(flags.workspace);
        const ac = new AbortController();
        const onInt = () => ac.abort();
        process.once('SIGINT', onInt);
        let job: JobInfo;
        try {
          job = await client.call(
            'jobs.logs',
            { id, follow: flags.follow === true },
            {
              signal: ac.signal,
              onOutput: (stream, chunk) =>
                (stream === 'stdout' ? process.stdout : process.stderr).write(chunk),
            },
          );
        } finally {
          process.off('SIGINT', onInt);
          client.close();
        }
        if (job.droppedBytes > 0)
          process.stderr.write(
            `cowork-vm: the first ${job.droppedBytes} bytes of output are no longer kept\n`,
          );
        if (flags.json) process.stderr.write(`${JSON.stringify(job)}\n`);
      }),
    );
  addExamples(logs, ['cowork-vm logs j3f9a1c', 'cowork-vm logs --follow j3f9a1c']);

  const kill = program
    .command('kill')
    .description('Kill a background job: every process it started in the guest')
    .argument('<job>', 'job id, as `cowork-vm jobs` shows it')
    .option('-w, --workspace <dir>', 'workspace folder (default: current directory)')
    .option('--json', 'print the ended job as JSON')
    .action(
      action(async (id: string, flags: { workspace?: string; json?: boolean }) => {
        const { client } = await connectController(flags.workspace);
        const job = await client.call('jobs.kill', { id }).finally(() => client.close());
        if (flags.json) return printJson(job);
        process.stdout.write(`${jobLine(job)}\n`);
      }),
    );
  addExamples(kill, ['cowork-vm kill j3f9a1c']);
}

/** `exec --background`: one decision like exec, then the job's id (or the denial, exit 126). */
export async function startBackground(
  client: ApiClient<'local'>,
  command: string,
  flags: { context?: 'local' | 'agent' | 'gateway'; cwd?: string; timeout?: number; json?: boolean },
): Promise<never> {
  let out: JobStart;
  try {
    out = await client.call('jobs.start', {
      command,
      context: flags.context ?? 'local',
      cwd: flags.cwd,
      timeoutMs: flags.timeout ? flags.timeout * 1000 : undefined,
    });
  } finally {
    client.close();
  }
  if (!out.job) {
    const reason = out.deniedReason ?? out.decision.reasons.join('; ');
    if (flags.json) printJson({ denied: true, decision: out.decision, reason });
    else process.stderr.write(`cowork-vm: denied: ${reason}\n`);
    process.exit(126);
  }
  if (flags.json) printJson(out.job);
  else {
    process.stdout.write(`${out.job.id}\n`);
    process.stderr.write(
      `started job ${out.job.id} — \`cowork-vm logs ${out.job.id} --follow\`, \`cowork-vm kill ${out.job.id}\`\n`,
    );
  }
  await new Promise((res) => process.stdout.write('', res));
  process.exit(0);
}

function jobLine(j: JobInfo): string {
  const how =
    j.state === 'running'
      ? `running since ${j.startedAt}`
      : j.state === 'exited'
        ? `exited ${j.exitCode ?? `by signal ${j.signal}`}`
        : `${j.state}${j.reason ? `: ${j.reason}` : ''}`;
  return `${j.id}  ${how.padEnd(36)}  ${oneLine(j.command)}`;
}

/** Guest-chosen text on one line with control characters visible (it cannot move the cursor). */
function oneLine(s: string): string {
  return s.replace(
    /[\u0000-\u001f\u007f-\u009f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}
