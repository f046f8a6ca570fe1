import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { ApiClient } from '../api/client.js';
import { LocalControlClient } from '../control/local-client.js';
import { CoworkError } from '../errors.js';
import { locateSandbox } from '../sandbox/locate.js';

export interface AttachOptions {
  workspace?: string;
  /** The image to start with when no sandbox runs (a running one is used as it is). */
  image?: string;
  /** The `cowork-vm` script to start the sandbox with (`start --detach`). */
  bin: string;
  env?: NodeJS.ProcessEnv;
  /** Progress and warnings; MUST NOT be stdout, which is the MCP channel. */
  log: (line: string) => void;
}

export interface Attached {
  client: ApiClient<'local'>;
  workspace: string;
}

/**
 * The workspace's controller, over the local socket: the running one, or one started now with
 * `cowork-vm start --detach` (what a user of an MCP client expects: the first tool call boots
 * the sandbox), its progress passed to `log`. A running sandbox with another image than asked
 * for is used as it is, with a warning that says how to get the other one.
 */
export async function attachController(opts: AttachOptions): Promise<Attached> {
  const env = opts.env ?? process.env;
  const loc = locateSandbox(opts.workspace, env);
  let client = await connect(loc).catch((err: unknown) => {
    if (CoworkError.is(err) && err.code === 'invalidState') return undefined;
    throw err;
  });
  if (!client) {
    opts.log(`no sandbox is running for ${loc.workspace}; starting one (cowork-vm start --detach)…`);
    const code = await startDetached(opts, loc.workspace, env);
    // A non-zero exit may be another client that started it first: connecting decides.
    client = await connect(loc).catch((err: unknown) => {
      throw new CoworkError(
        'unavailable',
        `the sandbox for ${loc.workspace} did not start (cowork-vm start exited ${code}; log: ${loc.stateDir}/controller.log)`,
        err,
      );
    });
  }
  await warnOnImage(client, opts);
  return { client, workspace: loc.workspace };
}

async function connect(loc: { socketPath: string; workspace: string }): Promise<ApiClient<'local'>> {
  return new ApiClient<'local'>(await LocalControlClient.connect(loc.socketPath, loc.workspace));
}

function startDetached(opts: AttachOptions, workspace: string, env: NodeJS.ProcessEnv): Promise<number> {
  const args = [opts.bin, 'start', '--detach', '--workspace', workspace];
  if (opts.image) args.push('--image', opts.image);
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (l) => {
      if (l.trim()) opts.log(l);
    });
  }
  return new Promise((resolve) => {
    child.once('error', () => resolve(127));
    child.once('close', (code) => resolve(code ?? 1));
  });
}

async function warnOnImage(client: ApiClient<'local'>, opts: AttachOptions): Promise<void> {
  if (!opts.image) return;
  const st = await client.call('status').catch(() => undefined);
  if (st && st.vm.image !== opts.image)
    opts.log(
      `warning: the running sandbox uses image ${st.vm.image}, not ${opts.image}; its tools are offered as they are — ` +
        `\`cowork-vm stop\` and reconnect to start it with --image ${opts.image}`,
    );
}
