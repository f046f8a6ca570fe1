import { spawn } from 'node:child_process';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Arch } from '../driver.js';

/**
 * Boots a throwaway QEMU with `-accel kvm -cpu host` and checks that the guest makes progress.
 * Payload: the guest kernel without an initrd (it runs all of early boot, then panics at
 * "VFS: Unable to mount root fs"; -no-reboot turns that into a QEMU exit), or, with no kernel,
 * only the firmware (SeaBIOS on a pc machine, printing to the debug console).
 * Broken nested KVM either aborts ("failed to set MSR 0x10a") or hangs: both yield ok=false,
 * the hang by a hard timeout and SIGKILL. This function never throws and never hangs.
 */

export interface KvmProbeResult {
  ok: boolean;
  payload: 'kernel' | 'firmware';
  detail: string;
  /** False when nothing was learnt about KVM (no payload, QEMU would not run): do not remember it. */
  conclusive: boolean;
}

export interface KvmProbeOptions {
  qemuBinary: string;
  arch: Arch;
  kernel?: string;
  timeoutMs?: number;
}

const KERNEL_PROGRESS = /Kernel panic|VFS: Unable to mount root|Run \/init|Freeing unused kernel/;
const FIRMWARE_PROGRESS = /Booting from|No bootable device|Boot failed/;

function probeArgs(opts: KvmProbeOptions, logPath: string): string[] {
  const common = [
    '-accel',
    'kvm',
    '-cpu',
    'host',
    '-m',
    '128',
    '-smp',
    '1',
    '-nodefaults',
    '-no-user-config',
  ];
  const tail = ['-display', 'none', '-no-reboot'];
  if (opts.kernel) {
    const x86 = opts.arch === 'x86_64';
    return [
      '-M',
      x86 ? 'microvm' : 'virt',
      ...common,
      ...tail,
      '-chardev',
      `file,id=con,path=${logPath.replaceAll(',', ',,')}`,
      '-serial',
      'chardev:con',
      '-kernel',
      opts.kernel,
      '-append',
      `console=${x86 ? 'ttyS0' : 'ttyAMA0'} panic=-1 root=/dev/cowork-kvm-probe`,
    ];
  }
  return [
    '-M',
    'pc',
    ...common,
    ...tail,
    '-chardev',
    `file,id=dbg,path=${logPath.replaceAll(',', ',,')}`,
    '-device',
    'isa-debugcon,iobase=0x402,chardev=dbg',
  ];
}

export async function probeKvm(opts: KvmProbeOptions): Promise<KvmProbeResult> {
  const payload = opts.kernel ? 'kernel' : 'firmware';
  if (!opts.kernel && opts.arch !== 'x86_64') {
    return {
      ok: false,
      payload,
      detail: 'no kernel to probe with on aarch64; using tcg until an image exists',
      conclusive: false,
    };
  }
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const dir = await mkdtemp(join(tmpdir(), 'cowork-kvm-probe-'));
  const logPath = join(dir, 'console.log');
  const errPath = join(dir, 'stderr.log');
  const progress = opts.kernel ? KERNEL_PROGRESS : FIRMWARE_PROGRESS;
  try {
    const errFile = await open(errPath, 'w');
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let spawnError: Error | undefined;
    const child = spawn(opts.qemuBinary, probeArgs(opts, logPath), {
      stdio: ['ignore', 'ignore', errFile.fd],
    });
    const exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        exit = { code, signal };
        resolve();
      });
      child.once('error', (err) => {
        spawnError = err;
        resolve();
      });
    });
    // Listeners are attached first: a spawn failure is emitted on the next tick.
    await errFile.close();
    const deadline = Date.now() + timeoutMs;
    let seen = false;
    while (!exit && !spawnError && Date.now() < deadline) {
      const log = await readFile(logPath, 'utf8').catch(() => '');
      if (progress.test(log)) {
        seen = true;
        break;
      }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 100))]);
    }
    if (!seen) {
      const log = await readFile(logPath, 'utf8').catch(() => '');
      seen = progress.test(log);
    }
    if (!exit && !spawnError) {
      child.kill('SIGKILL');
      await exited;
    }
    if (spawnError)
      return {
        ok: false,
        payload,
        detail: `could not run ${opts.qemuBinary}: ${spawnError.message}`,
        conclusive: false,
      };
    if (seen) return { ok: true, payload, detail: 'guest made progress under KVM', conclusive: true };
    const stderr = (await readFile(errPath, 'utf8').catch(() => '')).trim().split('\n').slice(-2).join(' | ');
    if (exit && exit.signal !== 'SIGKILL') {
      return {
        ok: false,
        payload,
        detail: `QEMU exited (${exit.signal ?? `code ${exit.code}`}): ${stderr || 'no output'}`,
        conclusive: true,
      };
    }
    return {
      ok: false,
      payload,
      detail: `guest made no progress within ${timeoutMs} ms (KVM hangs)`,
      conclusive: true,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
