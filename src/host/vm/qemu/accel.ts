import { constants } from 'node:fs';
import { access, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { release } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { CoworkError } from '../../errors.js';
import type { Accel, Arch } from '../driver.js';
import { probeKvm } from './kvm-probe.js';

/**
 * Accelerator resolution: an explicit choice (spec/--accel, else COWORK_VM_ACCEL) is honoured or
 * refused with a clear 'unsupported'; 'auto' picks hvf on macOS and, on Linux, KVM only after a
 * real boot probe succeeded — nested KVM that aborts or hangs MUST yield tcg, never a hang.
 * The verdict is remembered in <stateDir>/accel.json keyed by QEMU version + host kernel release.
 */

export type ResolvedAccel = Exclude<Accel, 'auto'>;
export interface AccelVerdict {
  accel: ResolvedAccel;
  reason: string;
}

export interface AccelContext {
  platform: NodeJS.Platform;
  hostArch: Arch;
  guestArch: Arch;
  qemuBinary: string;
  qemuVersion: string;
  stateDir: string;
  /** A Linux kernel of the guest arch to boot in the probe; without it only firmware is run. */
  kernel?: string;
  env?: NodeJS.ProcessEnv;
  kvmDevice?: string;
  probeTimeoutMs?: number;
}

const ACCELS = ['auto', 'kvm', 'hvf', 'tcg'] as const;
const cacheSchema = z.object({
  version: z.literal(1),
  verdicts: z.record(
    z.string(),
    z.object({
      accel: z.enum(['kvm', 'tcg']),
      reason: z.string(),
      payload: z.enum(['kernel', 'firmware']),
      probedAt: z.string(),
    }),
  ),
});
type AccelCache = z.infer<typeof cacheSchema>;

export function parseAccel(value: string, source: string): Accel {
  if ((ACCELS as readonly string[]).includes(value)) return value as Accel;
  throw new CoworkError(
    'invalidArgument',
    `${source}=${JSON.stringify(value)} is not one of ${ACCELS.join(', ')}`,
  );
}

/** The explicit request: the caller's value unless 'auto', then COWORK_VM_ACCEL, then 'auto'. */
export function requestedAccel(requested: Accel, env: NodeJS.ProcessEnv = process.env): Accel {
  if (requested !== 'auto') return requested;
  const fromEnv = env.COWORK_VM_ACCEL?.trim();
  return fromEnv ? parseAccel(fromEnv, 'COWORK_VM_ACCEL') : 'auto';
}

async function kvmUsable(device: string): Promise<string | undefined> {
  try {
    await access(device, constants.R_OK | constants.W_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT'
      ? `${device} does not exist (no KVM in this kernel/VM)`
      : `${device} is not readable and writable by this user (add yourself to the kvm group)`;
  }
}

export async function resolveAccel(requested: Accel, ctx: AccelContext): Promise<AccelVerdict> {
  const want = requestedAccel(requested, ctx.env);
  const sameArch = ctx.hostArch === ctx.guestArch;
  const device = ctx.kvmDevice ?? '/dev/kvm';
  if (want === 'tcg') return { accel: 'tcg', reason: 'forced (tcg)' };
  if (want === 'hvf') {
    if (ctx.platform !== 'darwin' || !sameArch) {
      throw new CoworkError(
        'unsupported',
        `accelerator hvf needs macOS and a ${ctx.guestArch} host — use --accel tcg`,
      );
    }
    return { accel: 'hvf', reason: 'forced (hvf)' };
  }
  if (want === 'kvm') {
    const why =
      ctx.platform !== 'linux'
        ? 'KVM exists only on Linux'
        : !sameArch
          ? 'guest and host arch differ'
          : undefined;
    const missing = why ?? (await kvmUsable(device));
    if (missing)
      throw new CoworkError('unsupported', `accelerator kvm was forced but ${missing} — use --accel tcg`);
    return { accel: 'kvm', reason: 'forced (kvm)' };
  }
  if (ctx.platform === 'darwin') {
    return sameArch
      ? { accel: 'hvf', reason: 'macOS Hypervisor.framework' }
      : { accel: 'tcg', reason: 'guest arch differs from host' };
  }
  if (ctx.platform !== 'linux')
    return { accel: 'tcg', reason: `no hardware accelerator support on ${ctx.platform}` };
  if (!sameArch) return { accel: 'tcg', reason: `${ctx.guestArch} guest on a ${ctx.hostArch} host` };
  const unusable = await kvmUsable(device);
  if (unusable) return { accel: 'tcg', reason: unusable };
  return cachedOrProbe(ctx);
}

function cacheKey(ctx: AccelContext): string {
  return `${ctx.qemuVersion}|${release()}|${ctx.guestArch}`;
}

async function cachedOrProbe(ctx: AccelContext): Promise<AccelVerdict> {
  const file = join(ctx.stateDir, 'accel.json');
  const cache = await readCache(file);
  const key = cacheKey(ctx);
  const hit = cache.verdicts[key];
  // A firmware-only pass does not prove a Linux kernel runs (nested KVM here hangs in early boot),
  // so it is re-probed once a kernel is available; any failure is final.
  if (hit && (hit.payload === 'kernel' || hit.accel === 'tcg' || !ctx.kernel)) {
    return { accel: hit.accel, reason: `${hit.reason} (remembered in ${file})` };
  }
  const result = await probeKvm({
    qemuBinary: ctx.qemuBinary,
    arch: ctx.guestArch,
    kernel: ctx.kernel,
    timeoutMs: ctx.probeTimeoutMs,
  });
  const verdict: AccelVerdict = result.ok
    ? { accel: 'kvm', reason: `KVM probe booted ${result.payload}: ${result.detail}` }
    : { accel: 'tcg', reason: `KVM unusable: ${result.detail}` };
  if (!result.conclusive) return verdict;
  cache.verdicts[key] = {
    ...verdict,
    accel: verdict.accel as 'kvm' | 'tcg',
    payload: result.payload,
    probedAt: new Date().toISOString(),
  };
  await writeCache(file, cache);
  return verdict;
}

async function readCache(file: string): Promise<AccelCache> {
  try {
    const parsed = cacheSchema.safeParse(JSON.parse(await readFile(file, 'utf8')));
    if (parsed.success) return parsed.data;
  } catch {
    // missing or unreadable: probe again
  }
  return { version: 1, verdicts: {} };
}

async function writeCache(file: string, cache: AccelCache): Promise<void> {
  try {
    await mkdir(join(file, '..'), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify(cache, null, 2)}\n`);
    await rename(tmp, file);
  } catch {
    // Not being able to remember the verdict only costs a probe next time.
  }
}
