import type { Command } from 'commander';
import { action, addExamples, printJson } from '../common.js';

/**
 * `cache ls|rm`: the cache disks under the state dir (src/host/cache/). Like `image`, these act
 * on the host's files, not on a running controller: a cache is removed while no sandbox uses it,
 * and `rm` refuses one that a running sandbox holds.
 */

async function caches() {
  const [{ hostPaths }, cache] = await Promise.all([
    import('../../host/paths.js'),
    import('../../host/cache/index.js'),
  ]);
  return { paths: hostPaths(), ...cache };
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
}

export function register(program: Command): void {
  const cache = program
    .command('cache')
    .description("The agent's package-cache disks (~/.cache, ~/.npm, cargo, go) that survive clean starts");
  addExamples(cache, ['cowork-vm cache ls', 'cowork-vm cache rm ws-3f9a1c02de4b5a67']);

  cache
    .command('ls')
    .description('List cache disks: name, size cap, space used on the host, the workspaces that used it')
    .option('--json', 'print machine-readable JSON')
    .action(
      action(async (flags: { json?: boolean }) => {
        const { paths, listCacheDisks } = await caches();
        const list = listCacheDisks(paths);
        if (flags.json) return printJson(list);
        if (list.length === 0) {
          process.stdout.write(
            'no cache disks yet — `cowork-vm start` creates one per workspace ([cache] in the config)\n',
          );
          return;
        }
        for (const c of list) {
          const use =
            c.inUseBy !== undefined ? `in use (pid ${c.inUseBy})` : `last used ${c.lastUsedAt ?? '?'}`;
          process.stdout.write(
            `${c.name.padEnd(22)}  ${c.kind.padEnd(9)}  ${mib(c.usedBytes).padStart(9)} of ${mib(c.sizeBytes).padEnd(10)}  ${use}  ${c.workspaces.join(', ')}\n`,
          );
        }
      }),
    );

  cache
    .command('rm')
    .description(
      'Delete a cache disk (refused while a running sandbox uses it); the next start makes an empty one',
    )
    .argument('<name>', 'cache name, as `cowork-vm cache ls` shows it')
    .option('--json', 'print the removed cache as JSON')
    .action(
      action(async (name: string, flags: { json?: boolean }) => {
        const { paths, removeCacheDisk } = await caches();
        const gone = removeCacheDisk(paths, name);
        if (flags.json) return printJson(gone);
        process.stdout.write(`removed cache disk ${gone.name} (${mib(gone.usedBytes)} freed)\n`);
      }),
    );
}
