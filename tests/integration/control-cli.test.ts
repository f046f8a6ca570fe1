import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Command } from 'commander';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import * as devicesCmd from '../../src/cli/commands/devices.js';
import * as pairCmd from '../../src/cli/commands/pair.js';
import { ControlStore, defaultControlStorePath } from '../../src/host/control/index.js';
import { hostPaths } from '../../src/host/paths.js';

/** `cowork-vm pair` and `cowork-vm devices` against a real device store in a temporary state dir. */

let dir: string;
let out: string[];
let savedEnv: string | undefined;

async function run(...args: string[]): Promise<{ out: string; exit?: number }> {
  out = [];
  const program = new Command('cowork-vm').exitOverride();
  pairCmd.register(program);
  devicesCmd.register(program);
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    out.push(String(s));
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    out.push(String(s));
    return true;
  });
  const exit = vi.spyOn(process, 'exit').mockImplementation((code) => {
    throw Object.assign(new Error('exit'), { exitCode: code });
  });
  try {
    await program.parseAsync(['node', 'cowork-vm', ...args]);
    return { out: out.join('') };
  } catch (e) {
    return { out: out.join(''), exit: (e as { exitCode?: number }).exitCode };
  } finally {
    write.mockRestore();
    err.mockRestore();
    exit.mockRestore();
  }
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cowork-cli-'));
  savedEnv = process.env.COWORK_VM_STATE_DIR;
  process.env.COWORK_VM_STATE_DIR = dir;
});

afterEach(() => {
  if (savedEnv === undefined) delete process.env.COWORK_VM_STATE_DIR;
  else process.env.COWORK_VM_STATE_DIR = savedEnv;
  rmSync(dir, { recursive: true, force: true });
});

describe('cowork-vm pair / devices', () => {
  it('pair prints a code that pairs exactly once; devices lists and revokes it', async () => {
    const { out: json } = await run('pair', '--role', 'viewer', '--json');
    const { code, role } = JSON.parse(json) as { code: string; role: string };
    expect(code).toMatch(/^[A-HJ-NP-Z2-9]{6}$/);
    expect(role).toBe('viewer');
    const store = new ControlStore({ file: defaultControlStorePath(hostPaths()) });
    const { device } = store.redeemPairingCode({
      code,
      identity: 'ip:127.0.0.1',
      name: 'phone',
      channel: 'control',
    });
    store.close();
    expect((await run('devices')).out).toMatch(
      new RegExp(`${device.id}\\s+viewer\\s+phone \\(control API\\)`),
    );
    expect(JSON.parse((await run('devices', '--json')).out)).toEqual([
      expect.objectContaining({ id: device.id }),
    ]);
    expect((await run('devices', 'revoke', device.id)).out).toMatch(/revoked/);
    expect((await run('devices')).out).toMatch(/no paired devices/);
    expect((await run('devices', '--all')).out).toMatch(/REVOKED/);
  });

  it('devices lists no control, bidi or zero-width characters, even for a name stored before sanitizing', async () => {
    const file = defaultControlStorePath(hostPaths());
    const store = new ControlStore({ file });
    const { code } = store.createPairingCode({ role: 'viewer' });
    store.redeemPairingCode({
      code,
      identity: 'ip:127.0.0.1',
      name: 'pho\u202Ene\u001b[2J\u200B',
      channel: 'control',
    });
    store.close();
    // A row written by an older version, straight into the file.
    const db = new Database(file);
    db.prepare(
      "INSERT INTO devices (id, name, role, channel, created_at) VALUES ('0ld0ld0ld0', ?, 'viewer', 'control', 1)",
    ).run('old\u2066name\u0007\u009b31m\r\nFAKE ROW');
    db.close();
    const { out: listing } = await run('devices');
    expect(listing).toMatch(/phone\[2J \(control API\)/);
    expect(listing).toMatch(/oldname31mFAKE ROW \(control API\)/);
    const bad = [...listing].filter((ch) => {
      const c = ch.codePointAt(0)!;
      return (
        (c < 0x20 && ch !== '\n') ||
        (c >= 0x7f && c <= 0x9f) ||
        (c >= 0x200b && c <= 0x200f) ||
        (c >= 0x202a && c <= 0x202e) ||
        (c >= 0x2066 && c <= 0x2069)
      );
    });
    expect(bad).toEqual([]);
    expect(listing.trim().split('\n')).toHaveLength(2);
    const json = JSON.parse((await run('devices', '--json')).out) as { name: string }[];
    expect(json.map((d) => d.name).sort()).toEqual(['oldname31mFAKE ROW', 'phone[2J']);
  });

  it('human output names the role and the expiry; default role is operator', async () => {
    const { out: text } = await run('pair');
    expect(text).toMatch(/pairing code: [A-HJ-NP-Z2-9]{6}\n {2}role operator · single use/);
  });

  it('fails with the right exit codes for a bad role and an unknown device', async () => {
    const bad = await run('pair', '--role', 'root');
    expect(bad.exit).toBe(64);
    expect(bad.out).toMatch(/--role root is not one of viewer, operator, admin/);
    const missing = await run('devices', 'revoke', 'nope');
    expect(missing.exit).toBe(66);
    expect(missing.out).toMatch(/no device 'nope'/);
  });
});
