import type { VmSpec } from '../../src/host/vm/driver.js';

/** A VmSpec for argument-building tests: paths that need not exist, everything overridable. */
export function testVmSpec(over: Partial<VmSpec> = {}): VmSpec {
  return {
    name: 'test-vm',
    cpus: 2,
    memoryMiB: 1024,
    image: { kernel: '/img/vmlinuz', initrd: '/img/initrd.img', rootfs: '/img/rootfs.ext4', arch: 'x86_64' },
    workspace: { tag: 'workspace', hostPath: '/home/u/project', readOnly: false },
    seed: { tag: 'seed', hostPath: '/state/seed', readOnly: true },
    accel: 'auto',
    guestPorts: [22],
    runDir: '/state/run',
    ...over,
  };
}
