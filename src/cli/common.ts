import type { Command } from 'commander';
import type { ApiClient } from '../host/api/client.js';
import { CoworkError, EXIT_CODES } from '../host/errors.js';

/*
 * Everything here is loaded for every command, --help and --version included: import only
 * commander's types and errors.ts statically; what a command needs is imported when it runs.
 */

/** Output helpers shared by every command: errors become one line + an exit code. */
export function fail(err: unknown): never {
  const e = CoworkError.from(err);
  process.stderr.write(`cowork-vm: ${e.message}\n`);
  if (process.env.COWORK_VM_DEBUG && e.cause)
    process.stderr.write(`${String((e.cause as Error)?.stack ?? e.cause)}\n`);
  process.exit(EXIT_CODES[e.code]);
}

/** Wraps a command action so any thrown error is reported as one clear line. */
export function action<A extends unknown[]>(
  fn: (...args: A) => Promise<void> | void,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      fail(err);
    }
  };
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Where a workspace's sandbox lives (state dir, control socket), without loading the controller. */
export async function locate(workspace?: string) {
  // locate.js itself, not the sandbox folder's index: that one also carries guest trust (and
  // the Mac's keychain reader), which a client command never needs.
  const { locateSandbox } = await import('../host/sandbox/locate.js');
  return locateSandbox(workspace);
}

/** Connects to the running controller of a workspace (loads only the socket client, no zod). */
export async function connectController(
  workspace?: string,
): Promise<{ client: ApiClient<'local'>; workspace: string }> {
  const [loc, { LocalControlClient }, { ApiClient }] = await Promise.all([
    locate(workspace),
    import('../host/control/local-client.js'),
    import('../host/api/client.js'),
  ]);
  const raw = await LocalControlClient.connect(loc.socketPath, loc.workspace);
  return { client: new ApiClient<'local'>(raw), workspace: loc.workspace };
}

export function intOption(name: string, min: number, max: number): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new CoworkError('invalidArgument', `${name} = ${v} is out of range (${min}–${max})`);
    }
    return n;
  };
}

export function addExamples(cmd: Command, examples: string[]): Command {
  return cmd.addHelpText('after', `\nExamples:\n${examples.map((e) => `  $ ${e}`).join('\n')}\n`);
}

export function humanMs(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}
