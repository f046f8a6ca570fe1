import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import { type AccelContext, requestedAccel, resolveAccel } from '../../src/host/vm/qemu/accel.js';

let dir: string;
let fakeKvm: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'accel-test-'));
  fakeKvm = join(dir, 'kvm');
  writeFileSync(fakeKvm, ''); // readable and writable: stands in for a usable /dev/kvm node
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A context whose probe, if it ever runs, fails fast: the QEMU binary does not exist. */
function ctx(over: Partial<AccelContext> = {}): AccelContext {
  return {
    platform: 'linux',
    hostArch: 'x86_64',
    guestArch: 'x86_64',
    qemuBinary: join(dir, 'no-such-qemu'),
    qemuVersion: '7.2.22',
    stateDir: join(dir, 'state'),
    env: {},
    kvmDevice: fakeKvm,
    kernel: '/img/vmlinuz',
    ...over,
  };
}

async function rejection(p: Promise<unknown>): Promise<CoworkError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CoworkError);
  return err as CoworkError;
}

/**
 * Stand-in QEMU executables (real processes) for the three behaviours a KVM probe meets:
 * abort like nested KVM here, hang in early boot, or boot the kernel to its root-mount panic.
 */
function standIn(kind: 'abort' | 'hang' | 'boots'): string {
  const path = join(dir, kind);
  const body = {
    abort: 'echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69" >&2\nkill -ABRT $$',
    hang: 'exec sleep 600',
    boots: [
      'for a in "$@"; do case "$a" in file,id=con,path=*) log=$(printf %s "$a" | cut -d= -f3-);; esac; done',
      'echo "VFS: Unable to mount root fs on unknown-block(0,0)" > "$log"',
      'exit 0',
    ].join('\n'),
  }[kind];
  writeFileSync(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return path;
}

function processesMentioning(needle: string): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((e) => {
      try {
        return readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(needle);
      } catch {
        return false;
      }
    })
    .map(Number);
}

function cacheFile(): string {
  return join(dir, 'state', 'accel.json');
}

function writeCache(verdict: { accel: 'kvm' | 'tcg'; payload: 'kernel' | 'firmware'; reason: string }): void {
  mkdirSync(join(dir, 'state'), { recursive: true });
  const key = `7.2.22|${release()}|x86_64`;
  writeFileSync(
    cacheFile(),
    JSON.stringify({ version: 1, verdicts: { [key]: { ...verdict, probedAt: '2026-01-01T00:00:00Z' } } }),
  );
}

describe('forced accelerators', () => {
  it('tcg is always possible', async () => {
    expect(await resolveAccel('tcg', ctx())).toEqual({ accel: 'tcg', reason: 'forced (tcg)' });
  });

  it('kvm forced with a usable device is used without probing', async () => {
    expect((await resolveAccel('kvm', ctx())).accel).toBe('kvm');
  });

  it('kvm forced without /dev/kvm is a clear unsupported error', async () => {
    const err = await rejection(resolveAccel('kvm', ctx({ kvmDevice: join(dir, 'absent') })));
    expect(err.code).toBe('unsupported');
    expect(err.message).toMatch(/does not exist.*--accel tcg/);
  });

  it('kvm forced on macOS or across architectures is unsupported', async () => {
    expect((await rejection(resolveAccel('kvm', ctx({ platform: 'darwin' })))).message).toMatch(
      /only on Linux/,
    );
    expect((await rejection(resolveAccel('kvm', ctx({ guestArch: 'aarch64' })))).message).toMatch(
      /arch differ/,
    );
  });

  it('hvf forced off macOS is unsupported; on macOS it is used', async () => {
    expect((await rejection(resolveAccel('hvf', ctx()))).code).toBe('unsupported');
    const mac = ctx({ platform: 'darwin', hostArch: 'aarch64', guestArch: 'aarch64' });
    expect((await resolveAccel('hvf', mac)).accel).toBe('hvf');
  });

  it('COWORK_VM_ACCEL forces when the caller says auto, but an explicit choice wins', async () => {
    expect(requestedAccel('auto', { COWORK_VM_ACCEL: 'tcg' })).toBe('tcg');
    expect(requestedAccel('kvm', { COWORK_VM_ACCEL: 'tcg' })).toBe('kvm');
    expect(requestedAccel('auto', {})).toBe('auto');
    const err = await rejection(resolveAccel('auto', ctx({ env: { COWORK_VM_ACCEL: 'fast' } })));
    expect(err.code).toBe('invalidArgument');
    expect(err.message).toMatch(/COWORK_VM_ACCEL="fast"/);
    const forcedKvm = await rejection(
      resolveAccel('auto', ctx({ env: { COWORK_VM_ACCEL: 'kvm' }, kvmDevice: join(dir, 'absent') })),
    );
    expect(forcedKvm.code).toBe('unsupported');
  });
});

describe('auto', () => {
  it('macOS picks hvf for the native arch and tcg for a foreign one', async () => {
    const mac = ctx({ platform: 'darwin', hostArch: 'aarch64', guestArch: 'aarch64' });
    expect((await resolveAccel('auto', mac)).accel).toBe('hvf');
    expect((await resolveAccel('auto', { ...mac, guestArch: 'x86_64' })).accel).toBe('tcg');
  });

  it('without /dev/kvm falls back to tcg and says why', async () => {
    const v = await resolveAccel('auto', ctx({ kvmDevice: join(dir, 'absent') }));
    expect(v).toEqual({ accel: 'tcg', reason: expect.stringMatching(/does not exist/) });
  });

  it('a foreign guest arch is tcg without probing', async () => {
    expect((await resolveAccel('auto', ctx({ guestArch: 'aarch64' }))).accel).toBe('tcg');
  });

  it('a QEMU that aborts under KVM (nested KVM here) yields tcg, remembered by qemu version and kernel release', async () => {
    const v = await resolveAccel('auto', ctx({ qemuBinary: standIn('abort') }));
    expect(v.accel).toBe('tcg');
    expect(v.reason).toMatch(/KVM unusable: QEMU exited \(SIGABRT\).*failed to set MSR 0x10a/);
    const cache = JSON.parse(readFileSync(cacheFile(), 'utf8'));
    expect(cache.verdicts[`7.2.22|${release()}|x86_64`]).toMatchObject({ accel: 'tcg', payload: 'kernel' });
    const again = await resolveAccel('auto', ctx({ qemuBinary: standIn('boots') }));
    expect(again).toMatchObject({ accel: 'tcg', reason: expect.stringMatching(/remembered/) });
  });

  it('a guest that hangs under KVM yields tcg after the probe timeout, and the probe QEMU is killed', async () => {
    const v = await resolveAccel('auto', ctx({ qemuBinary: standIn('hang'), probeTimeoutMs: 300 }));
    expect(v).toEqual({
      accel: 'tcg',
      reason: expect.stringMatching(/no progress within 300 ms \(KVM hangs\)/),
    });
    expect(processesMentioning(`${dir}/hang`)).toEqual([]);
  });

  it('a guest that boots under KVM yields kvm', async () => {
    const v = await resolveAccel('auto', ctx({ qemuBinary: standIn('boots') }));
    expect(v).toEqual({ accel: 'kvm', reason: expect.stringMatching(/KVM probe booted kernel/) });
  });

  it('a QEMU that cannot run says so and is not remembered', async () => {
    const v = await resolveAccel('auto', ctx());
    expect(v).toEqual({ accel: 'tcg', reason: expect.stringMatching(/could not run/) });
    expect(existsSync(cacheFile())).toBe(false);
  });

  it('a remembered kernel-level kvm verdict is reused without probing', async () => {
    writeCache({ accel: 'kvm', payload: 'kernel', reason: 'KVM probe booted kernel' });
    const v = await resolveAccel('auto', ctx());
    expect(v.accel).toBe('kvm');
    expect(v.reason).toMatch(/remembered/);
  });

  it('a firmware-only kvm pass is probed again once a kernel is available', async () => {
    writeCache({ accel: 'kvm', payload: 'firmware', reason: 'KVM probe booted firmware' });
    expect((await resolveAccel('auto', ctx({ kernel: undefined }))).accel).toBe('kvm');
    const v = await resolveAccel('auto', ctx({ qemuBinary: standIn('abort') }));
    expect(v.accel).toBe('tcg'); // the (failing) kernel probe ran
    expect(JSON.parse(readFileSync(cacheFile(), 'utf8')).verdicts[`7.2.22|${release()}|x86_64`].payload).toBe(
      'kernel',
    );
  });

  it('a different QEMU version is probed again', async () => {
    writeCache({ accel: 'kvm', payload: 'kernel', reason: 'ok' });
    const v = await resolveAccel('auto', ctx({ qemuVersion: '8.0.0', qemuBinary: standIn('abort') }));
    expect(v.reason).not.toMatch(/remembered/);
    expect(v.accel).toBe('tcg');
  });

  it('a corrupted cache file is ignored and rewritten', async () => {
    writeCache({ accel: 'kvm', payload: 'kernel', reason: 'ok' });
    writeFileSync(cacheFile(), '{not json');
    expect((await resolveAccel('auto', ctx({ qemuBinary: standIn('abort') }))).accel).toBe('tcg');
    expect(() => JSON.parse(readFileSync(cacheFile(), 'utf8'))).not.toThrow();
  });
});
