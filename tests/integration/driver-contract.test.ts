import { describe } from 'vitest';
import { QEMU_GUEST_NETWORK, QemuDriver } from '../../src/host/vm/qemu/index.js';
import { contract, type DriverCase } from './driver-contract-suite.js';

/**
 * The VmDriver contract (driver-contract-suite.ts) run against every driver this host can run.
 * QEMU runs here (Linux, TCG); the VZ driver runs the same suite on macOS only (no Mac exists in
 * CI here, so that block is the one allowed skipIf and says why). On Linux the VZ driver's
 * lifecycle runs against a fake bridge instead: vz-fake-bridge.test.ts.
 */

const cases: DriverCase[] = [
  {
    name: 'qemu',
    arch: 'x86_64',
    network: async () => QEMU_GUEST_NETWORK,
    make: async (stateDir) => new QemuDriver({ stateDir }),
  },
];
const vzCase: DriverCase = {
  name: 'vz',
  arch: process.arch === 'arm64' ? 'aarch64' : 'x86_64',
  network: async () => (await import('../../src/host/vm/vz/index.js')).VZ_GUEST_NETWORK,
  make: async () => new (await import('../../src/host/vm/vz/index.js')).VzDriver(),
};

for (const c of cases) describe(`VmDriver contract: ${c.name}`, () => contract(c));

// The VZ driver needs macOS (Virtualization.framework); on Linux this block is reported as skipped.
describe.skipIf(process.platform !== 'darwin')('VmDriver contract: vz (macOS only)', () => contract(vzCase));
