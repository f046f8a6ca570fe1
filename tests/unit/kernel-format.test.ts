import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import { assertBootableKernel, assertPvhKernel, kernelFormatOf } from '../../src/host/vm/kernel-format.js';

function header(at: number, magic: string, size = 1024): Buffer {
  const b = Buffer.alloc(size);
  b.write(magic, at, 'latin1');
  return b;
}

describe('kernel format', () => {
  it('tells the formats VZ and direct boot load from the ones they do not', () => {
    expect(kernelFormatOf(header(56, 'ARMd'))).toBe('arm64-image');
    expect(kernelFormatOf(header(0x202, 'HdrS'))).toBe('x86-bzimage');
    expect(kernelFormatOf(Buffer.from([0x1f, 0x8b, 8, 0]))).toBe('gzip');
    const zboot = header(0, 'MZ');
    zboot.write('zimg', 4, 'latin1');
    expect(kernelFormatOf(zboot)).toBe('efi-zboot');
    expect(kernelFormatOf(Buffer.from('#!/bin/sh\n'))).toBe('unknown');
    expect(kernelFormatOf(Buffer.alloc(0))).toBe('unknown');
  });

  it('refuses a kernel of the other architecture or a compressed one, naming the rebuild', () => {
    const f = join(tmpdir(), `kfmt-${process.pid}`);
    writeFileSync(f, header(0x202, 'HdrS'));
    expect(() => assertBootableKernel(f, 'amd64')).not.toThrow();
    const wrongArch = (() => {
      try {
        assertBootableKernel(f, 'arm64');
      } catch (e) {
        return e;
      }
    })();
    expect(CoworkError.is(wrongArch, 'invalidArgument')).toBe(true);
    expect((wrongArch as Error).message).toContain('cowork-vm image build NAME --arch arm64');
    writeFileSync(f, Buffer.from([0x1f, 0x8b, 8, 0]));
    expect(() => assertBootableKernel(f, 'arm64')).toThrow(
      /compressed; Virtualization.framework needs the raw arm64 Image/,
    );
  });

  it('takes an x86-64 ELF as the PVH kernel and refuses anything else or nothing', () => {
    const f = join(tmpdir(), `kpvh-${process.pid}`);
    const elf = Buffer.alloc(64);
    elf.write('\x7fELF', 0, 'latin1');
    elf[4] = 2; // ELFCLASS64
    elf[5] = 1; // little-endian
    elf.writeUInt16LE(62, 18); // EM_X86_64
    writeFileSync(f, elf);
    expect(() => assertPvhKernel(f)).not.toThrow();
    elf.writeUInt16LE(183, 18); // EM_AARCH64
    writeFileSync(f, elf);
    expect(() => assertPvhKernel(f)).toThrow(
      /not an x86-64 ELF kernel.*cowork-vm image build NAME --arch amd64/,
    );
    writeFileSync(f, header(0x202, 'HdrS')); // a bzImage is not it
    expect(() => assertPvhKernel(f)).toThrow(/not an x86-64 ELF kernel/);
    expect(() => assertPvhKernel(`${f}-absent`)).toThrow(/wrote no .*uncompressed amd64 kernel/);
  });
});
