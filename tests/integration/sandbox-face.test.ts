import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { assertBuilt } from '../helpers/cli.js';
import { shortModule } from '../helpers/module-trace.js';

/*
 * sandbox/index.ts is the folder's face, and the CLI's client commands may import it: doing so
 * loads the paths, the lock and the workspace rules, never the controller, a VM driver, SSH or
 * zod. Asserted on what Node resolves for the built module (a resolve hook), not on timings.
 */

const FACE = fileURLToPath(new URL('../../dist/host/sandbox/index.js', import.meta.url));

function modulesLoadedBy(script: string): { code: number | null; modules: string[]; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'face-trace-'));
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
    const r = spawnSync(
      process.execPath,
      ['--import', join(dir, 'register.mjs'), '--input-type=module', '-e', script],
      {
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    const modules = [...new Set(readFileSync(log, 'utf8').split('\n').filter(Boolean))].map(shortModule);
    return { code: r.status, modules, stderr: r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('sandbox/index.ts, the folder face', () => {
  it('imports light: paths, lock and workspace rules, but no controller, driver, SSH or zod', () => {
    assertBuilt();
    const r = modulesLoadedBy(
      `const s = await import(${JSON.stringify(pathToFileURL(FACE).href)});\n` +
        "for (const n of ['locateSandbox', 'controlSocketPath', 'readLock', 'processAlive', 'SandboxLock', 'resolveWorkspace', 'startController'])\n" +
        "  if (typeof s[n] !== 'function') throw new Error('missing ' + n);\n",
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.modules).toContain('dist/host/sandbox/locate.js');
    const heavy = r.modules.filter(
      (m) =>
        m.startsWith('pkg:') ||
        /dist\/host\/(sandbox\/(serve|sandbox|controller)|vm|ssh|policy|agent)\b/.test(m),
    );
    expect(heavy).toEqual([]);
  });
});
