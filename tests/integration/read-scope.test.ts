import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPolicyEngine, parseRule } from '../../src/host/policy/index.js';
import { toolDecision } from '../../src/host/policy/tool-policy.js';
import { searchCommand, searchMatches } from '../../src/host/tools/files-read.js';

/**
 * search_files / list_directory against a real tree: the policy's withheld list and the real
 * find | xargs grep pipeline (run here in bash with /workspace mapped to the temp folder) must
 * never return a line of a file a Read rule denies, whatever spelling reaches it.
 */
let root = '';
let ws = '';
const engine = createPolicyEngine({ policy: { deny: ['Read(.env)', 'Read(secrets/**)'] } });

beforeAll(() => {
  root = realpathSync(mkdtempSync(join(tmpdir(), 'cowork-readscope-')));
  ws = join(root, 'ws');
  mkdirSync(join(ws, 'sub', 'secrets'), { recursive: true });
  mkdirSync(join(ws, 'secrets'));
  writeFileSync(join(ws, '.env'), 'TOKEN=root-secret\n');
  writeFileSync(join(ws, 'sub', '.env'), 'TOKEN=sub-secret\n');
  writeFileSync(join(ws, 'secrets', 'k'), 'TOKEN=dir-secret\n');
  writeFileSync(join(ws, 'notes.txt'), 'TOKEN=public\n');
  linkSync(join(ws, '.env'), join(ws, 'hard-alias.txt'));
  symlinkSync('.env', join(ws, 'sym-alias.txt'));
  writeFileSync(join(ws, 'we*rd[1].env'), 'TOKEN=odd-name-public\n');
});

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

const decide = (path: string, scope: 'entries' | 'tree', context: 'agent' | 'local' = 'agent') =>
  engine.evaluate(
    {
      kind: 'tool',
      tool: 'search_files',
      risk: 'read',
      input: { path },
      paths: [{ path, access: 'read', scope }],
    },
    { context, workspace: ws },
  );

function runSearch(path: string, withheld: string[]): string[] {
  const input = { pattern: 'TOKEN', path, ignore_case: false, max_results: 100 };
  const cmd = searchCommand(input, withheld).replaceAll("'/workspace", `'${ws}`);
  const out = execFileSync('bash', ['-c', cmd], { encoding: 'utf8' });
  return searchMatches(
    out.replaceAll(ws, '/workspace'),
    `/workspace${path === '.' ? '' : `/${path}`}`,
    withheld,
  );
}

describe('Read denies in search and list', () => {
  it('the decision withholds denied files, folders and hard links, at any depth', () => {
    const d = decide('.', 'tree');
    expect(d.effect).toBe('allow');
    expect([...(d.withheld ?? [])].sort()).toEqual(['.env', 'hard-alias.txt', 'secrets/', 'sub/.env']);
  });

  it('a real find | grep over the workspace returns no denied line (symlinks are not followed)', () => {
    const d = decide('.', 'tree');
    const lines = runSearch('.', d.withheld ?? []);
    expect(lines.sort()).toEqual(['notes.txt:1:TOKEN=public', 'we*rd[1].env:1:TOKEN=odd-name-public']);
    expect(lines.join('\n')).not.toMatch(/secret/);
  });

  it('searching a sub-folder withholds relative to it', () => {
    const d = decide('sub', 'tree');
    expect(d.withheld).toEqual(['.env']);
    expect(runSearch('sub', d.withheld ?? [])).toEqual([]);
  });

  it('searching a denied file or through a symlink to it is denied outright', () => {
    expect(decide('.env', 'tree')).toMatchObject({ effect: 'deny', rule: 'Read(.env)' });
    expect(decide('sym-alias.txt', 'tree')).toMatchObject({ effect: 'deny', rule: 'Read(.env)' });
    expect(decide('hard-alias.txt', 'tree')).toMatchObject({ effect: 'deny', rule: 'Read(.env)' });
  });

  it('list (entries) withholds only direct children', () => {
    expect([...(decide('.', 'entries').withheld ?? [])].sort()).toEqual([
      '.env',
      'hard-alias.txt',
      'secrets/',
    ]);
  });

  it('a folder too large to check asks instead of allowing', () => {
    const rules = {
      user: { allow: [], ask: [], deny: [parseRule('Read(.env)')] },
      workspace: { ask: [], deny: [] },
      egress: { allow: [], deny: [] },
      scanLimit: 3,
    };
    const req = {
      kind: 'tool' as const,
      tool: 'search_files',
      risk: 'read' as const,
      input: {},
      paths: [{ path: '.', access: 'read' as const, scope: 'tree' as const }],
    };
    expect(toolDecision(req, { context: 'agent', workspace: ws }, rules)).toMatchObject({
      effect: 'ask',
      rule: 'read-scope-unverified',
    });
  });
});
