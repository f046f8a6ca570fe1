import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import { archMismatch, assertVzBootable, intelPkeysRefusal } from '../../src/host/vm/vz/boot-checks.js';
import { loadVzBridge } from '../../src/host/vm/vz/native.js';
import { grantsVirtualization, type VzHostFacts, vzProbe } from '../../src/host/vm/vz/probe.js';

const ENTITLED = `<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "https://www.apple.com/DTDs/PropertyList-1.0.dtd"><plist version="1.0"><dict><key>com.apple.security.virtualization</key><true/></dict></plist>`;

/** A Mac on which everything is right; each test breaks one fact. */
function mac(over: Partial<VzHostFacts> = {}): VzHostFacts {
  return {
    platform: 'darwin',
    darwinMajor: 24,
    processArch: 'arm64',
    translated: false,
    bridge: { loaded: true, supported: true },
    node: {
      path: '/Users/me/Library/Application Support/cowork-vm/vz/node',
      exists: true,
      verify: { ok: true, output: '' },
      entitlementsXml: ENTITLED,
    },
    imageArches: ['arm64'],
    ...over,
  };
}

describe('vzProbe', () => {
  it('says ok with hvf on a Mac where everything is right', () => {
    expect(vzProbe(mac())).toMatchObject({ ok: true, accel: 'hvf', details: { arch: 'arm64' } });
    expect(vzProbe(mac({ processArch: 'x64', imageArches: ['amd64'] }))).toMatchObject({ ok: true });
    // No image yet is the image store's business (doctor says to build one), not a driver refusal.
    expect(vzProbe(mac({ imageArches: [] })).ok).toBe(true);
  });

  it('refuses off macOS, pointing at QEMU', () => {
    expect(vzProbe(mac({ platform: 'linux' }))).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/macOS only/),
      fix: expect.stringMatching(/QEMU/),
    });
  });

  it('refuses macOS older than 13', () => {
    const p = vzProbe(mac({ darwinMajor: 21 }));
    expect(p).toMatchObject({ ok: false, fix: 'update macOS' });
    expect(p.reason).toMatch(/macOS 13 .*Darwin 21/);
  });

  it('refuses an x64 node under Rosetta and says to use an arm64 node', () => {
    const p = vzProbe(mac({ processArch: 'x64', translated: true }));
    expect(p.ok).toBe(false);
    expect(p.reason).toMatch(/x64 build running under Rosetta/);
    expect(p.fix).toMatch(/arm64 node/);
    expect(p.fix).toMatch(/sign-node-macos\.sh/);
  });

  it('refuses when the addon does not load, with the build command', () => {
    const p = vzProbe(
      mac({ bridge: { loaded: false, error: 'the vz-bridge addon is not built (tried …)' } }),
    );
    expect(p).toMatchObject({ ok: false, reason: expect.stringMatching(/not built/) });
    expect(p.fix).toMatch(/npx node-gyp rebuild/);
  });

  it('refuses a Mac where VZVirtualMachine.isSupported is false, naming nested virtualization', () => {
    const p = vzProbe(mac({ bridge: { loaded: true, supported: false } }));
    expect(p.ok).toBe(false);
    expect(p.reason).toMatch(/^this Mac cannot run VMs/);
    expect(p.reason).toMatch(/nested virtualization/);
    expect(p.fix).toBeTruthy();
  });

  it('refuses a missing signed node, a bad signature and a missing entitlement, each with the signing script', () => {
    const base = mac().node;
    const missing = vzProbe(mac({ node: { path: base.path, exists: false } }));
    expect(missing.reason).toMatch(/no entitled node binary at .*cowork-vm\/vz\/node/);
    const badSig = vzProbe(
      mac({ node: { ...base, verify: { ok: false, output: 'code object is not signed at all' } } }),
    );
    expect(badSig.reason).toMatch(/does not verify .*not signed at all/);
    const noEnt = vzProbe(
      mac({
        node: {
          ...base,
          entitlementsXml: '<plist><dict><key>com.apple.security.cs.allow-jit</key><true/></dict></plist>',
        },
      }),
    );
    expect(noEnt.reason).toMatch(/signed without com\.apple\.security\.virtualization/);
    const noOutput = vzProbe(mac({ node: { ...base, entitlementsXml: undefined } }));
    expect(noOutput.ok).toBe(false);
    for (const p of [missing, badSig, noEnt, noOutput]) {
      expect(p.ok).toBe(false);
      expect(p.fix).toMatch(/bash scripts\/sign-node-macos\.sh/);
    }
  });

  it('refuses when the only images are of the other arch, saying which to build or import', () => {
    const p = vzProbe(mac({ imageArches: ['amd64'] }));
    expect(p.ok).toBe(false);
    expect(p.reason).toMatch(/amd64 only; this Mac runs arm64 guests/);
    expect(p.fix).toMatch(/cowork-vm image build base --arch arm64/);
    expect(p.fix).toMatch(/cowork-vm image import/);
    const intel = vzProbe(mac({ processArch: 'x64', imageArches: ['arm64'] }));
    expect(intel.fix).toMatch(/--arch amd64/);
  });

  it('checks in the order a user fixes things (Rosetta before the addon, signature before images)', () => {
    const all = mac({
      processArch: 'x64',
      translated: true,
      bridge: { loaded: false, error: 'x' },
      imageArches: ['amd64'],
    });
    expect(vzProbe(all).reason).toMatch(/Rosetta/);
    expect(vzProbe(mac({ node: { path: 'n', exists: false }, imageArches: ['amd64'] })).reason).toMatch(
      /entitled node/,
    );
  });
});

describe('grantsVirtualization', () => {
  it('wants the key followed by <true/>', () => {
    expect(grantsVirtualization(ENTITLED)).toBe(true);
    expect(grantsVirtualization(ENTITLED.replace('<true/>', '<false/>'))).toBe(false);
    expect(grantsVirtualization('<key>com.apple.security.virtualization</key>\n\t<true />')).toBe(true);
    expect(grantsVirtualization('')).toBe(false);
  });
});

describe('VZ boot checks', () => {
  const intel = { platform: 'darwin' as const, arch: 'amd64' as const };
  const silicon = { platform: 'darwin' as const, arch: 'arm64' as const };

  it('refuses kernels >= 6.12 on Intel Macs only (memory protection keys)', () => {
    expect(intelPkeysRefusal('6.12.38+deb13-amd64', intel)).toMatch(
      /6\.12 or newer.*X86_INTEL_MEMORY_PROTECTION_KEYS/,
    );
    expect(intelPkeysRefusal('7.0.1', intel)).toMatch(/QEMU driver/);
    expect(intelPkeysRefusal('6.1.0-40-amd64', intel)).toBeUndefined();
    expect(intelPkeysRefusal('5.19.0', intel)).toBeUndefined();
    expect(intelPkeysRefusal('6.12.38+deb13-arm64', silicon)).toBeUndefined();
    expect(intelPkeysRefusal('6.12.0', { platform: 'linux', arch: 'amd64' })).toBeUndefined();
    expect(intelPkeysRefusal(undefined, intel)).toBeUndefined();
    expect(intelPkeysRefusal('unknown', intel)).toBeUndefined();
  });

  it('names the image to build when the image arch is not the host arch', () => {
    expect(archMismatch('aarch64', silicon)).toBeUndefined();
    expect(archMismatch('x86_64', silicon)).toMatch(/image is amd64 .*--arch arm64/);
    expect(archMismatch('aarch64', intel)).toMatch(/--arch amd64/);
  });

  const dir = mkdtempSync(join(tmpdir(), 'vz-boot-checks-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function image(kernel: Buffer, kernelVersion?: string) {
    const d = mkdtempSync(join(dir, 'img-'));
    writeFileSync(join(d, 'vmlinuz'), kernel);
    writeFileSync(join(d, 'initrd.img'), '');
    writeFileSync(join(d, 'rootfs.ext4'), '');
    if (kernelVersion) writeFileSync(join(d, 'manifest.json'), JSON.stringify(manifest(kernelVersion)));
    return { kernel: join(d, 'vmlinuz'), initrd: join(d, 'initrd.img'), rootfs: join(d, 'rootfs.ext4') };
  }
  const bz = Buffer.alloc(1024);
  bz.write('HdrS', 0x202, 'latin1');

  it('assertVzBootable reads the kernel version from the image manifest for the Intel guard', () => {
    const fine = image(bz, '6.1.0-40-amd64');
    expect(() => assertVzBootable({ ...fine, arch: 'x86_64' }, intel)).not.toThrow();
    const newer = image(bz, '6.12.38+deb13-amd64');
    expect(() => assertVzBootable({ ...newer, arch: 'x86_64' }, intel)).toThrow(/6\.12 or newer/);
    const missing = { ...fine, initrd: join(dir, 'nope'), arch: 'x86_64' as const };
    const err = (() => {
      try {
        assertVzBootable(missing, intel);
      } catch (e) {
        return e;
      }
    })();
    expect(CoworkError.is(err, 'notFound')).toBe(true);
  });
});

function manifest(kernelVersion: string) {
  const sha = '0'.repeat(64);
  return {
    schema: 1,
    name: 'base',
    arch: 'amd64',
    suite: 'trixie',
    recipeHash: sha,
    builtAt: '2026-01-01T00:00:00.000Z',
    kernelVersion,
    packages: {},
    files: {},
    stages: [],
    totalSeconds: 1,
  };
}

describe('the fake-bridge knob', () => {
  it('is refused without COWORK_VM_TEST_FAKE_VZ=1, and loads the module with it (on any platform)', () => {
    const fake = new URL('../helpers/fake-vz-bridge.cjs', import.meta.url).pathname;
    expect(() => loadVzBridge(undefined, { COWORK_VM_VZ_BRIDGE_MODULE: fake })).toThrow(
      /only for tests.*COWORK_VM_TEST_FAKE_VZ=1/,
    );
    const bridge = loadVzBridge(undefined, { COWORK_VM_VZ_BRIDGE_MODULE: fake, COWORK_VM_TEST_FAKE_VZ: '1' });
    expect(bridge.isSupported()).toBe(true);
    for (const fn of [
      'create',
      'start',
      'requestStop',
      'stop',
      'connect',
      'listen',
      'onState',
      'close',
    ] as const)
      expect(typeof bridge[fn]).toBe('function');
  });
});
