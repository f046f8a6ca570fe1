import { execFile } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { CoworkError } from '../../dist/host/errors.js';

/**
 * The CLI as a user or a script meets it: a new `node bin/cowork-vm.js` process per call.
 * Spawned asynchronously — the bench's own controller answers the CLI's socket on this event loop.
 */

const BIN = fileURLToPath(new URL('../../bin/cowork-vm.js', import.meta.url));

function timed(args, env) {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    execFile(process.execPath, args, { env, timeout: 120_000, maxBuffer: 1 << 20 }, (err, _out, stderr) =>
      err
        ? reject(
            new CoworkError(
              'internal',
              `bench: node ${args.join(' ')} failed: ${stderr || err.message}`,
              err,
            ),
          )
        : resolve(performance.now() - t),
    );
  });
}

/** `cowork-vm --version` and its baseline `node -e 0`, interleaved; per-run ms of each. */
export async function timeCliStartup(n) {
  const cli = [];
  const node = [];
  await timed([BIN, '--version'], process.env); // warm the page cache
  for (let i = 0; i < n; i++) {
    node.push(await timed(['-e', '0'], process.env));
    cli.push(await timed([BIN, '--version'], process.env));
  }
  return { cli, node };
}

/** `cowork-vm exec -- true` against the sandbox `sb` (its state dir via sb.env); per-run ms. */
export async function timeCliExec(sb, n) {
  const args = [BIN, 'exec', '--workspace', sb.workspace, '--', 'true'];
  await timed(args, sb.env);
  const out = [];
  for (let i = 0; i < n; i++) out.push(await timed(args, sb.env));
  return out;
}
