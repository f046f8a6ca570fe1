import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, cli } from '../helpers/cli.js';
import { makeTestEnv, type TestSandboxEnv } from '../helpers/sandbox.js';

/**
 * The cache disk through the built CLI and two real boots of one workspace: what the agent puts
 * in its pip/npm caches is there after stop/start, while /tmp and the rest of /home/agent start
 * clean; `cache ls` shows it, `cache rm` refuses it while in use and deletes it afterwards.
 */

type Cache = { name: string; path: string; sizeBytes: number; usedBytes: number; inUseBy?: number };

describe('cache disk survives a clean start (built CLI, two boots)', () => {
  let t: TestSandboxEnv;
  let ws: string;
  const run = (args: string[]) => cli([args[0] as string, '--workspace', ws, ...args.slice(1)], t.env);
  const exec = (command: string) => run(['exec', '--', command]);
  const caches = (): Cache[] => {
    const r = cli(['cache', 'ls', '--json'], t.env);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as Cache[];
  };

  beforeAll(() => {
    assertBuilt();
    t = makeTestEnv('cache');
    ws = t.workspace;
    mkdirSync(t.env.COWORK_VM_CONFIG_DIR as string, { recursive: true });
    writeFileSync(join(t.env.COWORK_VM_CONFIG_DIR as string, 'config.toml'), '[cache]\nsizeGiB = 2\n');
    const r = run(['start', '--detach']);
    expect(r.code, r.stderr).toBe(0);
  });
  afterAll(() => {
    run(['stop']);
    t.cleanup();
  });

  let cache: Cache;

  it('the first start creates a sparse 2 GiB disk for this workspace, in use, shown by status', () => {
    const list = caches();
    expect(list).toHaveLength(1);
    cache = list[0] as Cache;
    expect(cache.name).toMatch(/^ws-[0-9a-f]{16}$/);
    expect(cache.sizeBytes).toBe(2 * 1024 ** 3);
    expect(cache.usedBytes).toBeLessThan(cache.sizeBytes / 10);
    expect(cache.inUseBy).toBeGreaterThan(0);
    const st = JSON.parse(run(['status', '--json']).stdout) as { cache?: { name: string } };
    expect(st.cache?.name).toBe(cache.name);
  });

  it('the agent writes into its caches, /tmp and its home; cache rm is refused while the sandbox runs', () => {
    const r = exec(
      'mkdir -p ~/.cache/pip/http ~/.npm/_cacache && echo pip-kept > ~/.cache/pip/http/marker && ' +
        'echo npm-kept > ~/.npm/_cacache/marker && echo gone > /tmp/tmp-marker && echo gone > ~/home-marker && ' +
        'stat -c %U ~/.cache/pip/http/marker && findmnt -n -o FSTYPE ~/.cache',
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('agent\next4\n');
    const rm = cli(['cache', 'rm', cache.name], t.env);
    expect(rm.code).toBe(75);
    expect(rm.stderr).toContain('in use by the running sandbox');
  });

  it('after stop and start the caches hold what was written; /tmp and the rest of the home are clean', () => {
    expect(run(['stop']).code).toBe(0);
    expect(caches()[0]?.inUseBy).toBeUndefined();
    const r = run(['start', '--detach']);
    expect(r.code, r.stderr).toBe(0);
    const check = exec(
      'cat ~/.cache/pip/http/marker ~/.npm/_cacache/marker; ' +
        'for f in /tmp/tmp-marker ~/home-marker; do [ -e "$f" ] && echo "left: $f"; done; echo end',
    );
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).toBe('pip-kept\nnpm-kept\nend\n');
    expect(caches().map((c) => c.name)).toEqual([cache.name]);
  });

  it('cache rm deletes it once the sandbox is stopped; the next start would make an empty one', () => {
    expect(run(['stop']).code).toBe(0);
    const rm = cli(['cache', 'rm', cache.name], t.env);
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stdout).toContain(`removed cache disk ${cache.name}`);
    expect(existsSync(cache.path)).toBe(false);
    expect(caches()).toEqual([]);
    const again = cli(['cache', 'rm', cache.name], t.env);
    expect(again.code).toBe(66);
  });
});
