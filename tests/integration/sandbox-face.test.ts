import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { assertBuilt } from '../helpers/cli.js';
import { nodeModules, shortModule } from '../helpers/module-trace.js';

/*
 * sandbox/index.ts is the folder's face, and the CLI's client commands may import it: doing so
 * loads the paths, the lock and the workspace rules, never the controller, a VM driver, SSH or
 * zod. Asserted on what Node resolves for the built module (a resolve hook), not on timings.
 */

const FACE = fileURLToPath(new URL('../../dist/host/sandbox/index.js', import.meta.url));

function modulesLoadedBy(script: string): { code: number | null; modules: string[]; stderr: string } {
  const r = nodeModules(['--input-type=module', '-e', script]);
  return { ...r, modules: r.modules.map(shortModule) };
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
