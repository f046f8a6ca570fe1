import { describe, expect, it } from 'vitest';
import { egressRelayCommand } from '../../src/host/egress/index.js';
import type { VmSpec } from '../../src/host/vm/driver.js';
import { buildQemuArgs, type QemuHostConfig } from '../../src/host/vm/qemu/index.js';

// The QEMU side of the relay: guestfwd uses `cmd:` with the relay when the spec carries one.
const spec = (egress: VmSpec['egress']): VmSpec => ({
  name: 'relay',
  cpus: 1,
  memoryMiB: 256,
  image: { kernel: '/k', initrd: '/i', rootfs: '/r', arch: 'x86_64' },
  workspace: { tag: 'workspace', hostPath: '/ws', readOnly: false },
  seed: { tag: 'seed', hostPath: '/seed', readOnly: true },
  accel: 'tcg',
  guestPorts: [22],
  egress,
  runDir: '/run',
});

const netdevOf = (s: VmSpec) => {
  const host: QemuHostConfig = {
    hostArch: 'x86_64',
    accel: 'tcg',
    shareMode: '9p',
    hostPorts: { 22: 40022 },
    qmpSocketPath: '/run/qmp.sock',
    consoleLogPath: '/run/console.log',
    ninePSecurityModel: 'none',
  };
  const { args } = buildQemuArgs(s, host);
  return args[args.indexOf('-netdev') + 1] ?? '';
};

describe('guestfwd relay in the QEMU arguments', () => {
  it('runs the relay per connection, commas doubled for the option parser', () => {
    const cmd = egressRelayCommand(38080, '/usr/bin/node');
    const netdev = netdevOf(
      spec({ hostPort: 38080, guestAddress: '10.0.2.100', guestPort: 3128, hostCommand: cmd }),
    );
    expect(netdev).toContain(`guestfwd=tcp:10.0.2.100:3128-cmd:${cmd.replaceAll(',', ',,')}`);
    expect(netdev).not.toContain('-tcp:127.0.0.1:38080');
    // Undoing QEMU's escaping gives back exactly the command, and nothing else follows it.
    const value = netdev.slice(netdev.indexOf('-cmd:') + 5);
    expect(value.replaceAll(',,', ',')).toBe(cmd);
    expect(value.replaceAll(',,', '')).not.toContain(',');
  });

  it('refuses a multi-line host command', () => {
    expect(() =>
      netdevOf(spec({ hostPort: 1, guestAddress: '10.0.2.100', guestPort: 3128, hostCommand: 'a\nb' })),
    ).toThrow(/one non-empty line/);
  });
});
