import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROLES } from '../../src/host/control/protocol.js';
import { assertBuilt, cli } from '../helpers/cli.js';
import { cliModules, shortModule } from '../helpers/module-trace.js';

/*
 * The CLI starts at once: registering commands loads no implementation. Asserted on what the
 * built binary resolves (a module hook), never on wall-clock times — `npm run bench` measures those.
 */

const PARSER_ONLY = (m: string) =>
  m.startsWith('node:') || m.startsWith('dist/cli/') || m === 'pkg:commander' || m === 'bin/cowork-vm.js';
// Leaf modules without imports of their own that the option table needs (errors, --risk choices,
// the contract's limits behind exec's option ranges).
const LEAVES = new Set(['dist/host/errors.js', 'dist/host/policy/types.js', 'dist/host/api/limits.js']);

describe('cowork-vm startup', () => {
  let root: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(() => {
    assertBuilt();
    root = mkdtempSync(join(tmpdir(), 'cli-startup-'));
    env = {
      ...process.env,
      COWORK_VM_STATE_DIR: join(root, 'state'),
      COWORK_VM_CONFIG_DIR: join(root, 'cfg'),
    };
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  for (const args of [
    ['--version'],
    ['--help'],
    ['exec', '--help'],
    ['run', '--help'],
    ['start', '--help'],
  ]) {
    it(`${args.join(' ')} loads only the parser`, () => {
      const r = cliModules(args, env);
      expect(r.code, r.stderr).toBe(0);
      const loaded = r.modules.map((u) => shortModule(u).replace(/^.*?\b(bin\/cowork-vm\.js)$/, '$1'));
      // commander is required as CommonJS (src/cli/commander.ts), which ESM hooks do not see.
      expect(loaded).toContain('dist/cli/commander.js');
      expect(loaded.filter((m) => !PARSER_ONLY(m) && !LEAVES.has(m))).toEqual([]);
    });
  }

  it('the client path of exec and status loads the socket client — not the controller, not zod', () => {
    for (const args of [
      ['exec', '--workspace', root, '--', 'true'],
      ['status', '--workspace', root],
    ]) {
      const r = cliModules(args, env);
      expect([3, 75], r.stderr).toContain(r.code); // no sandbox runs here: both report that
      const heavy = r.modules
        .map(shortModule)
        .filter(
          (m) =>
            /^pkg:(?!commander$)/.test(m) ||
            /dist\/host\/(sandbox\/serve|vm|agent|ssh|policy\/index)/.test(m),
        );
      expect(heavy, args[0]).toEqual([]);
    }
  });

  it('--help still lists every command with its options', () => {
    const r = cli(['--help'], env);
    for (const c of [
      'start',
      'status',
      'exec',
      'run',
      'models',
      'stop',
      'image',
      'doctor',
      'pair',
      'secrets',
    ])
      expect(r.stdout).toMatch(new RegExp(`\\n  ${c}\\b`));
    const pair = cli(['pair', '--help'], env).stdout;
    for (const role of ROLES) expect(pair).toContain(role);
  });
});
