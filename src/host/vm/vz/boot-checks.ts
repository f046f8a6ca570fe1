import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { CoworkError } from '../../errors.js';
import type { Arch, BootImage } from '../driver.js';
import { readManifest } from '../image-manifest.js';
import { hostImageArch, type ImageArch, parseImageArch } from '../image-recipe.js';
import { assertBootableKernel } from '../kernel-format.js';

/**
 * What VzDriver.start checks before it spawns anything, so a guest that cannot boot under
 * Virtualization.framework is refused with a reason instead of failing as an opaque
 * "Internal Virtualization error" or a 60 s wait for a readiness line.
 */

export interface VzHost {
  platform: NodeJS.Platform;
  /** The arch node runs as, as an image arch (the probe refuses an x64 node under Rosetta). */
  arch: ImageArch;
}

export function currentVzHost(): VzHost {
  return { platform: process.platform, arch: hostImageArch() };
}

/**
 * Intel Macs: Linux ≥ 6.12 built with X86_INTEL_MEMORY_PROTECTION_KEYS=y (Debian's amd64 kernels
 * are) does not boot under Virtualization.framework — it stops before the first console line.
 * Returns the refusal, or undefined when the kernel may boot. Pure: the version comes from the
 * image manifest (kernelVersion, e.g. "6.1.0-40-amd64"); an unparseable version is let through.
 */
export function intelPkeysRefusal(kernelVersion: string | undefined, host: VzHost): string | undefined {
  if (host.platform !== 'darwin' || host.arch !== 'amd64' || !kernelVersion) return undefined;
  const m = /^(\d+)\.(\d+)/.exec(kernelVersion);
  if (!m) return undefined;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  if (major < 6 || (major === 6 && minor < 12)) return undefined;
  return (
    `the image's kernel ${kernelVersion} is 6.12 or newer; on an Intel Mac such kernels (built with ` +
    'X86_INTEL_MEMORY_PROTECTION_KEYS, as Debian builds them) do not boot under Virtualization.framework — ' +
    'build the image from a suite with an older kernel (COWORK_VM_SUITE=bookworm), or use the QEMU driver'
  );
}

/** Image arch vs the host's: VZ runs guests of the host's own arch only. Pure. */
export function archMismatch(imageArch: Arch | ImageArch, host: VzHost): string | undefined {
  const image = parseImageArch(imageArch);
  if (image === host.arch) return undefined;
  return (
    `the image is ${image} but this Mac runs ${host.arch} guests only (Virtualization.framework does not emulate) — ` +
    `build one with \`cowork-vm image build base --arch ${host.arch}\` or import one built on Linux with \`cowork-vm image import FILE\``
  );
}

/** Throws a CoworkError naming the problem and the fix, before anything is spawned. */
export function assertVzBootable(image: BootImage, host: VzHost): void {
  for (const [what, path] of [
    ['kernel', image.kernel],
    ['initrd', image.initrd],
    ['root disk', image.rootfs],
  ] as const) {
    if (!existsSync(path)) {
      throw new CoworkError(
        'notFound',
        `the image's ${what} ${path} does not exist — rebuild or re-import the image`,
      );
    }
  }
  const mismatch = archMismatch(image.arch, host);
  if (mismatch) throw new CoworkError('unsupported', mismatch);
  assertBootableKernel(image.kernel, host.arch);
  const manifest = safeManifest(dirname(image.kernel));
  const pkeys = intelPkeysRefusal(manifest?.kernelVersion, host);
  if (pkeys) throw new CoworkError('unsupported', pkeys);
}

function safeManifest(dir: string): ReturnType<typeof readManifest> {
  try {
    return readManifest(dir);
  } catch {
    return undefined;
  }
}
