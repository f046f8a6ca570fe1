import { z } from 'zod';
import type { ExecResult } from '../ssh/types.js';
import { abridge } from './abridge.js';
import { GUEST_WORKSPACE, guestPath } from './guest-path.js';
import type { Tool, ToolResult } from './types.js';

export const DEFAULT_SHELL_TIMEOUT_S = 120;
export const MAX_SHELL_TIMEOUT_S = 1800;

const shellInput = z
  .object({
    command: z.string().min(1).describe('A bash command line, run with bash -c in the guest.'),
    cwd: z
      .string()
      .optional()
      .describe('Working directory, relative to /workspace or absolute. Default /workspace.'),
    timeout_seconds: z
      .number()
      .int()
      .positive()
      .max(MAX_SHELL_TIMEOUT_S)
      .optional()
      .describe(`Kill the command after this many seconds (default ${DEFAULT_SHELL_TIMEOUT_S}).`),
  })
  .strict();

export type ShellInput = z.infer<typeof shellInput>;

/** What the model reads about a finished command: exit status, then both streams, abridged. */
export function formatExecResult(result: ExecResult, timeoutS: number): string {
  const lines: string[] = [];
  if (result.timedOut) lines.push(`Command timed out after ${timeoutS}s and was killed.`);
  else if (result.signal) lines.push(`Command was killed by signal ${result.signal}.`);
  else lines.push(`Exit code: ${result.exitCode}`);
  if (result.truncated) lines.push('(output exceeded the capture limit and was truncated)');
  lines.push(result.stdout === '' ? 'stdout: (empty)' : `stdout:\n${abridge(result.stdout)}`);
  if (result.stderr !== '') lines.push(`stderr:\n${abridge(result.stderr)}`);
  return lines.join('\n');
}

export const shellTool: Tool<ShellInput, 'shell'> = {
  name: 'shell',
  risk: 'destructive',
  access: 'shell',
  description:
    'Run a shell command in the Linux VM (Debian; bash, git, python3, build tools). The workspace is at ' +
    '/workspace. Commands may be denied by policy or need the user’s approval; if denied, you are told why — ' +
    'adapt instead of retrying the same command. Output is abridged when long.',
  input: shellInput,
  describe: (input) => (input.cwd ? `shell (in ${input.cwd}): ${input.command}` : `shell: ${input.command}`),
  claim: (input) => ({
    kind: 'shell',
    command: input.command,
    cwd: input.cwd === undefined ? GUEST_WORKSPACE : guestPath(input.cwd),
  }),
  async run(input, ctx): Promise<ToolResult> {
    const timeoutS = input.timeout_seconds ?? DEFAULT_SHELL_TIMEOUT_S;
    const outcome = await ctx.shell.run({ timeoutMs: timeoutS * 1000 });
    if (!outcome.result) {
      const reason = outcome.deniedReason ?? outcome.decision.reasons.join('; ');
      return {
        content: `Command denied: ${reason || 'policy said no'}. It was not run.`,
        isError: true,
        denied: true,
      };
    }
    const r = outcome.result;
    return {
      content: formatExecResult(r, timeoutS),
      // A non-zero exit is information for the model, not a tool failure; a kill or timeout is.
      isError: r.timedOut || r.signal !== null,
    };
  },
};
