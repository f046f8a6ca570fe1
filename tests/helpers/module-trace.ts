import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BIN } from './cli.js';

/**
 * Runs the built CLI under a Node module-resolution hook (node:module register) and returns
 * every ES module URL it resolved, so a test can say exactly what a command loads — no timing.
 */
export function cliModules(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): { code: number | null; modules: string[]; stderr: string } {
  return nodeModules([BIN, ...args], env);
}

/** The same trace for any node command line (e.g. `['--input-type=module', '-e', code]`). */
export function nodeModules(
  nodeArgs: string[],
  env: NodeJS.ProcessEnv = process.env,
): { code: number | null; modules: string[]; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'module-trace-'));
  try {
    const log = join(dir, 'modules.log');
    writeFileSync(
      join(dir, 'hooks.mjs'),
      "import { appendFileSync } from 'node:fs';\n" +
        'export async function resolve(spec, ctx, next) {\n' +
        '  const r = await next(spec, ctx);\n' +
        `  appendFileSync(${JSON.stringify(log)}, r.url + '\\n');\n` +
        '  return r;\n}\n',
    );
    writeFileSync(
      join(dir, 'register.mjs'),
      `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});\n`,
    );
    writeFileSync(log, '');
    const r = spawnSync(process.execPath, ['--import', join(dir, 'register.mjs'), ...nodeArgs], {
      env,
      encoding: 'utf8',
      timeout: 60_000,
    });
    const modules = [...new Set(readFileSync(log, 'utf8').split('\n').filter(Boolean))];
    return { code: r.status, modules, stderr: r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A module URL as a short name: 'dist/cli/main.js', 'pkg:commander', 'node:fs'. */
export function shortModule(url: string): string {
  if (url.startsWith('node:')) return url;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return `pkg:${rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  const i = url.lastIndexOf('/dist/');
  return i >= 0 ? url.slice(i + 1) : url;
}
