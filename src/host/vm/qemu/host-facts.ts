import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { arch as osArch } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { CoworkError } from '../../errors.js';
import type { Arch } from '../driver.js';

/** Facts about the host the QEMU driver needs: binaries, versions, free ports. All read-only. */

const run = promisify(execFile);

export const VIRTIOFSD_PATHS = ['/usr/lib/qemu/virtiofsd', '/usr/libexec/virtiofsd', '/usr/lib/virtiofsd'];

export function hostArch(): Arch {
  return osArch() === 'arm64' ? 'aarch64' : 'x86_64';
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Resolves a binary name through PATH (absolute paths are checked as they are). */
export async function findExecutable(
  name: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string | undefined> {
  if (name.includes('/')) return (await isExecutable(name)) ? name : undefined;
  for (const dir of (env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter)) {
    if (dir && (await isExecutable(join(dir, name)))) return join(dir, name);
  }
  return undefined;
}

export async function findVirtiofsd(candidates: string[] = VIRTIOFSD_PATHS): Promise<string | undefined> {
  for (const p of candidates) if (await isExecutable(p)) return p;
  return undefined;
}

/** "QEMU emulator version 7.2.22 (Debian ...)" → "7.2.22". */
export function parseQemuVersion(output: string): string | undefined {
  return /QEMU emulator version (\d+\.\d+(?:\.\d+)?)/.exec(output)?.[1];
}

export async function qemuVersion(binary: string): Promise<string | undefined> {
  try {
    const { stdout } = await run(binary, ['--version'], { timeout: 10_000 });
    return parseQemuVersion(stdout);
  } catch {
    return undefined;
  }
}

/**
 * A currently free TCP port on 127.0.0.1. Another process may take it before QEMU binds it;
 * the driver detects QEMU's "could not set up host forwarding rule" and retries.
 */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', (err) =>
      reject(CoworkError.from(err, 'unavailable', 'cannot find a free port on 127.0.0.1')),
    );
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      server.close(() =>
        port
          ? resolve(port)
          : reject(new CoworkError('unavailable', 'the OS assigned no free port on 127.0.0.1')),
      );
    });
  });
}

/**
 * The host TSC frequency in kHz, or undefined when it cannot be known reliably (then the guest
 * calibrates itself). "cpu MHz" in /proc/cpuinfo is the TSC rate only when the frequency does not
 * scale (no cpufreq, typical for VMs like the CI machines) or the kernel says `tsc_known_freq`;
 * under cpufreq it is the *current* clock, so Intel's `base_frequency` (= TSC rate) is used
 * instead. A wrong value would make guest time run fast or slow, so guessing is not an option.
 */
export async function hostTscKhz(
  cpuinfoPath = '/proc/cpuinfo',
  cpufreqDir = '/sys/devices/system/cpu/cpu0/cpufreq',
): Promise<number | undefined> {
  const cpuinfo = await readFile(cpuinfoPath, 'utf8').catch(() => '');
  const scaling = await access(cpufreqDir).then(
    () => true,
    () => false,
  );
  const base = await readFile(join(cpufreqDir, 'base_frequency'), 'utf8').catch(() => undefined);
  return parseTscKhz(cpuinfo, {
    scaling,
    baseFrequencyKhz: base === undefined ? undefined : Number(base.trim()),
  });
}

export function parseTscKhz(
  cpuinfo: string,
  cpufreq: { scaling: boolean; baseFrequencyKhz?: number } = { scaling: false },
): number | undefined {
  if (!/\bconstant_tsc\b/.test(cpuinfo)) return undefined;
  const knownFreq = /\btsc_known_freq\b/.test(cpuinfo);
  if (cpufreq.scaling && !knownFreq) {
    const base = cpufreq.baseFrequencyKhz;
    return base && Number.isInteger(base) && base > 100_000 ? base : undefined;
  }
  const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo)?.[1]);
  return Number.isFinite(mhz) && mhz > 100 ? Math.round(mhz * 1000) : undefined;
}

/** util-linux `setpriv` with --pdeathsig: children die with us even if we are SIGKILLed. */
export async function findSetpriv(platform: NodeJS.Platform = process.platform): Promise<string | undefined> {
  if (platform !== 'linux') return undefined;
  const path = await findExecutable('setpriv');
  if (!path) return undefined;
  try {
    const { stdout } = await run(path, ['--help'], { timeout: 5000 });
    return stdout.includes('--pdeathsig') ? path : undefined;
  } catch {
    return undefined;
  }
}
