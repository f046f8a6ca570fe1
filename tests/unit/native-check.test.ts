import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireProvided } from '../../src/host/host-requirements.js';

// scripts/check-native.sh type-checks native/vz-bridge against hand-written stubs of Apple's
// headers. These tests prove the check has teeth: each mutation is a mistake that would only show
// up on a Mac, and each must fail the check with clang naming it. A missing clang fails the file
// (requireProvided throws), it is never skipped.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SCRIPT = join(ROOT, 'scripts/check-native.sh');
const BRIDGE = join(ROOT, 'native/vz-bridge');
const tmp = mkdtempSync(join(tmpdir(), 'native-check-'));

function check(files: string[], env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync('bash', [SCRIPT, ...files], { cwd: ROOT, encoding: 'utf8', env, timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

let n = 0;
/** A copy of one bridge source with `from` replaced (every occurrence when `all`), checked. */
function mutant(file: string, from: string, to: string, all = false) {
  const text = readFileSync(join(BRIDGE, file), 'utf8');
  const count = text.split(from).length - 1;
  expect(count, `"${from}" must occur in ${file} (else the mutation tests nothing)`).toBeGreaterThan(0);
  const changed = all ? text.replaceAll(from, to) : text.replace(from, to);
  expect(changed).not.toBe(text);
  const dir = join(tmp, String(n++));
  const copy = join(dir, basename(file));
  mkdirSync(dir, { recursive: true });
  writeFileSync(copy, changed);
  return check([copy]);
}

beforeAll(() => {
  requireProvided('clang');
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('check-native (Objective-C++ against stub headers)', () => {
  it('passes on the bridge as committed, and says it is not a macOS build', () => {
    const r = check([]);
    expect(r.out).toContain('NOT a macOS build');
    for (const f of ['vz_bridge.mm', 'vz_machine.mm', 'vm_config.mm', 'js_link.mm'])
      expect(r.out).toContain(`ok   ${join(BRIDGE, f)}`);
    expect(r.status, r.out).toBe(0);
  });

  it('checks exactly the sources binding.gyp builds', () => {
    const gyp = readFileSync(join(ROOT, 'binding.gyp'), 'utf8');
    const built = [...gyp.matchAll(/"native\/vz-bridge\/([a-z_]+\.mm)"/g)].map((m) => m[1]).sort();
    const present = readdirSync(BRIDGE)
      .filter((f) => f.endsWith('.mm'))
      .sort();
    expect(built).toEqual(present);
  });

  it('fails on a misspelled delegate selector (VZ would silently never call it)', () => {
    const r = mutant('vz_machine.mm', 'guestDidStopVirtualMachine', 'guestDidStopVirtualMachin', true);
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/undeclared selector 'guestDidStopVirtualMachin:'/);
  });

  it('fails when only the implementation of a delegate method is misspelled', () => {
    const r = mutant(
      'vz_machine.mm',
      '- (void)guestDidStopVirtualMachine:(VZVirtualMachine *)virtualMachine {',
      '- (void)guestDidStopVM:(VZVirtualMachine *)virtualMachine {',
    );
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/method definition for 'guestDidStopVirtualMachine:' not found/);
  });

  it('fails on a wrong completion-block signature', () => {
    const start = mutant(
      'vz_machine.mm',
      'startWithCompletionHandler:^(NSError *_Nullable error)',
      'startWithCompletionHandler:^(BOOL error)',
    );
    expect(start.status).toBe(1);
    expect(start.out).toMatch(
      /parameter of type 'void \(\^ _Nonnull\)\(NSError \* _Nullable __strong\)' with an rvalue of type 'void \(\^\)\(BOOL\)'/,
    );
    // The connection and the error swapped: every name still resolves, only the type is wrong.
    const connect = mutant(
      'vz_machine.mm',
      '^(VZVirtioSocketConnection *_Nullable connection, NSError *_Nullable error)',
      '^(NSError *_Nullable error, VZVirtioSocketConnection *_Nullable connection)',
    );
    expect(connect.status).toBe(1);
    expect(connect.out).toMatch(
      /with an rvalue of type 'void \(\^\)\(NSError \* _Nullable __strong, VZVirtioSocketConnection/,
    );
  });

  it('fails on a macOS 14 API outside @available, and passes with the guard', () => {
    const bare = mutant(
      'vm_config.mm',
      '[cfg validateWithError:&error]',
      '[cfg validateSaveRestoreSupportWithError:&error]',
    );
    expect(bare.status).toBe(1);
    expect(bare.out).toMatch(
      /'validateSaveRestoreSupportWithError:' is only available on macOS 14.0 or newer/,
    );
    const guarded = mutant(
      'vm_config.mm',
      '  if (![cfg validateWithError:&error]) {',
      '  if (@available(macOS 14, *)) (void)[cfg validateSaveRestoreSupportWithError:&error];\n  if (![cfg validateWithError:&error]) {',
    );
    expect(guarded.status, guarded.out).toBe(0);
  });

  it('fails on a misspelled VZ class and on a selector VZ does not have', () => {
    const cls = mutant(
      'vz_machine.mm',
      '[[VZVirtioSocketListener alloc] init]',
      '[[VZVirtioSocketListner alloc] init]',
    );
    expect(cls.status).toBe(1);
    expect(cls.out).toMatch(/VZVirtioSocketListner/);
    const sel = mutant('vz_machine.mm', '[device connectToPort:port', '[device connectToPort:port timeout:1');
    expect(sel.status).toBe(1);
    expect(sel.out).toMatch(
      /no visible @interface for 'VZVirtioSocketDevice' declares the selector 'connectToPort:timeout:completionHandler:'/,
    );
  });

  it('exits 2 and says how to install clang when clang is missing', () => {
    const r = check([], { ...process.env, CLANG: '/nonexistent/clang' });
    expect(r.status).toBe(2);
    expect(r.out).toMatch(/clang not found — install it: apt-get install clang/);
  });
});
