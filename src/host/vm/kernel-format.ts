import { closeSync, openSync, readSync } from 'node:fs';
import { CoworkError } from '../errors.js';
import type { ImageArch } from './image-recipe.js';

/**
 * What a kernel file is, read from its header. Virtualization.framework's VZLinuxBootLoader
 * loads an arm64 kernel only as a raw `Image` (arm64 boot protocol: magic "ARM\x64" at offset
 * 56); a gzip'd vmlinuz or an EFI zboot image (MZ + "zimg") fails there with an opaque
 * "Internal Virtualization error". On x86_64 it takes a bzImage ("HdrS" at 0x202). QEMU also
 * boots an uncompressed x86-64 ELF vmlinux (PVH entry), which amd64 images carry besides.
 */
export type KernelFormat = 'arm64-image' | 'x86-bzimage' | 'x86-64-elf' | 'gzip' | 'efi-zboot' | 'unknown';

export function kernelFormatOf(header: Buffer): KernelFormat {
  // "\x7fELF", ELFCLASS64, little-endian; e_machine 62 (x86-64) at offset 18.
  if (
    header.length >= 20 &&
    header.readUInt32BE(0) === 0x7f454c46 &&
    header[4] === 2 &&
    header[5] === 1 &&
    header.readUInt16LE(18) === 62
  )
    return 'x86-64-elf';
  if (header.length >= 2 && header[0] === 0x1f && header[1] === 0x8b) return 'gzip';
  if (
    header.length >= 8 &&
    header.toString('latin1', 0, 2) === 'MZ' &&
    header.toString('latin1', 4, 8) === 'zimg'
  )
    return 'efi-zboot';
  if (header.length >= 60 && header.readUInt32LE(56) === 0x644d5241) return 'arm64-image';
  if (header.length >= 0x206 && header.toString('latin1', 0x202, 0x206) === 'HdrS') return 'x86-bzimage';
  return 'unknown';
}

export function readKernelFormat(path: string): KernelFormat {
  const buf = Buffer.alloc(1024);
  const fd = openSync(path, 'r');
  try {
    const n = readSync(fd, buf, 0, buf.length, 0);
    return kernelFormatOf(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}

const WANTED: Record<ImageArch, KernelFormat> = { arm64: 'arm64-image', amd64: 'x86-bzimage' };

/** An amd64 image's vmlinux must be an x86-64 ELF (QEMU then refuses it itself if it lacks the PVH note). */
export function assertPvhKernel(path: string): void {
  let found: KernelFormat;
  try {
    found = readKernelFormat(path);
  } catch (err) {
    throw new CoworkError(
      'invalidArgument',
      `the build wrote no ${path} (the uncompressed amd64 kernel)`,
      err,
    );
  }
  if (found !== 'x86-64-elf') {
    throw new CoworkError(
      'invalidArgument',
      `${path} is not an x86-64 ELF kernel; rebuild the image with \`cowork-vm image build NAME --arch amd64\``,
    );
  }
}

/** Throws unless `path` is a kernel VZ (and QEMU's direct boot) can load for `arch`. */
export function assertBootableKernel(path: string, arch: ImageArch): void {
  const found = readKernelFormat(path);
  if (found === WANTED[arch]) return;
  const hint =
    found === 'gzip' || found === 'efi-zboot'
      ? ' — it is compressed; Virtualization.framework needs the raw arm64 Image (decompress it, or build with a kernel that ships one)'
      : '';
  throw new CoworkError(
    'invalidArgument',
    `kernel ${path} is ${found === 'unknown' ? 'not a recognised kernel' : `a ${found} file`}, not the ${WANTED[arch]} an ${arch} guest boots${hint}; rebuild the image with \`cowork-vm image build NAME --arch ${arch}\``,
  );
}
