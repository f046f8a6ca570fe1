import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { register } from '../../src/cli/commands/policy.js';

let dir = '';
let ws = '';
let cfg = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cowork-policy-cli-'));
  ws = join(dir, 'ws');
  mkdirSync(join(ws, '.cowork'), { recursive: true });
  cfg = join(dir, 'config.toml');
  writeFileSync(cfg, '[policy]\nallow = ["Bash(ls:*)", "Bash(git status)"]\n');
  writeFileSync(
    join(ws, '.cowork', 'config.toml'),
    '[policy]\nallow = ["Bash(curl:*)"]\ndeny = ["Bash(git status)"]\n',
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  process.exitCode = undefined;
  vi.restoreAllMocks();
});

async function run(args: string[]): Promise<{ out: string; err: string; code: number | undefined }> {
  let out = '';
  let err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    out += String(s);
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    err += String(s);
    return true;
  });
  const program = new Command('cowork-vm').exitOverride();
  register(program);
  await program.parseAsync([
    'node',
    'cowork-vm',
    'policy',
    'check',
    '--config',
    cfg,
    '--workspace',
    ws,
    ...args,
  ]);
  const code = process.exitCode === undefined ? undefined : Number(process.exitCode);
  return { out, err, code };
}

it('allow → exit 0 with {effect, reasons, layer, rule}', async () => {
  const r = await run(['--json', '--', 'ls', '-la']);
  expect(r.code).toBe(0);
  expect(JSON.parse(r.out)).toEqual({
    effect: 'allow',
    reasons: ['every command is covered by the allow rule Bash(ls:*)'],
    layer: 'user',
    rule: 'Bash(ls:*)',
  });
});

it('ask → exit 1; the workspace allow is ignored with a warning', async () => {
  const r = await run(['--json', '--', 'curl', 'x']);
  expect(r.code).toBe(1);
  expect(JSON.parse(r.out).effect).toBe('ask');
  expect(r.err).toContain('policy.allow is ignored');
});

it('deny → exit 2, from the workspace deny rule and from the built-in set', async () => {
  expect((await run(['--', 'git', 'status'])).code).toBe(2);
  const r = await run(['--context', 'local', '--', 'sudo', 'id']);
  expect(r.code).toBe(2);
  expect(r.out).toMatch(/^deny \(layer: guardrails, rule: builtin:sudo\)\n {2}- /);
});

it('checks tool calls with the path guard', async () => {
  const r = await run([
    '--json',
    '--tool',
    'write_file',
    '--risk',
    'write',
    '--input',
    '{"path":"../escape"}',
  ]);
  expect(r.code).toBe(2);
  expect(JSON.parse(r.out)).toMatchObject({ effect: 'deny', layer: 'guardrails', rule: 'path-guard' });
  expect((await run(['--tool', 'read_file', '--risk', 'read', '--input', '{"path":"a.txt"}'])).code).toBe(0);
});
