import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { processAlive, readLock, SandboxLock } from '../../src/host/sandbox/lock.js';

const dir = () => mkdtempSync(join(tmpdir(), 'lock-'));

describe('SandboxLock', () => {
  it('takes the lock, records the pid and releases it', () => {
    const file = join(dir(), 'sub', 'lock');
    const lock = SandboxLock.acquire(file, '/w');
    expect(readLock(file)).toMatchObject({ pid: process.pid, workspace: '/w' });
    lock.release();
    expect(existsSync(file)).toBe(false);
  });

  it('refuses a second holder while the first one lives', () => {
    const file = join(dir(), 'lock');
    writeFileSync(file, JSON.stringify({ pid: 424242, workspace: '/w', startedAt: '' }));
    expect(() => SandboxLock.acquire(file, '/w', () => true)).toThrow(
      /already running for \/w \(pid 424242\)/,
    );
    expect(readLock(file)?.pid).toBe(424242);
  });

  it('clears a stale lock left by a dead process', () => {
    const file = join(dir(), 'lock');
    // A real pid that is certainly gone: a child that already exited.
    const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    });
    const deadPid = Number(child.stdout);
    expect(processAlive(deadPid)).toBe(false);
    writeFileSync(file, JSON.stringify({ pid: deadPid, workspace: '/w', startedAt: '' }));
    const lock = SandboxLock.acquire(file, '/w');
    expect(readLock(file)?.pid).toBe(process.pid);
    lock.release();
  });

  it('clears an unreadable (corrupt) lock file', () => {
    const file = join(dir(), 'lock');
    writeFileSync(file, 'garbage');
    const lock = SandboxLock.acquire(file, '/w');
    expect(readLock(file)?.pid).toBe(process.pid);
    lock.release();
  });

  it('release does not remove a lock someone else took meanwhile', () => {
    const file = join(dir(), 'lock');
    const lock = SandboxLock.acquire(file, '/w');
    writeFileSync(file, JSON.stringify({ pid: 1, workspace: '/w', startedAt: '' }));
    lock.release();
    expect(readLock(file)?.pid).toBe(1);
  });

  it('processAlive: own pid yes, nonsense no', () => {
    expect(processAlive(process.pid)).toBe(true);
    expect(processAlive(-5)).toBe(false);
    expect(processAlive(0)).toBe(false);
  });
});
