import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The two macOS scripts cannot run here; what can be checked is that they parse and that on
 * any other system they refuse with a message instead of half-running.
 */
const script = (name: string) => fileURLToPath(new URL(`../../scripts/${name}`, import.meta.url));

describe.runIf(process.platform !== 'darwin')('macOS scripts off macOS', () => {
  for (const [name, code, message] of [
    ['macos-acceptance.sh', 2, /checks cowork-vm on macOS and cannot run on Linux/],
    ['sign-node-macos.sh', 1, /macOS only \(Virtualization\.framework\)/],
  ] as const) {
    it(`${name} parses, and refuses with a reason`, () => {
      expect(spawnSync('bash', ['-n', script(name)]).status).toBe(0);
      const r = spawnSync('bash', [script(name)], { encoding: 'utf8' });
      expect(r.status).toBe(code);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe('');
    });
  }
});
