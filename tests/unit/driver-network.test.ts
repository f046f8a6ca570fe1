import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import { checkCapabilities } from '../../src/host/sandbox/sandbox.js';
import { writeSeed } from '../../src/host/sandbox/seed.js';
import type { DriverCapabilities } from '../../src/host/vm/driver.js';
import { describeVmExit } from '../../src/host/vm/exit-reason.js';
import { QEMU_GUEST_NETWORK, QemuDriver } from '../../src/host/vm/qemu/index.js';
import { VZ_CAPABILITIES, VZ_GUEST_NETWORK } from '../../src/host/vm/vz/index.js';

/*
 * The guest's addresses belong to the driver: the sandbox passes them through the seed share,
 * and a request the driver cannot honour fails before anything boots.
 */

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function seedEnv(over: Partial<Parameters<typeof writeSeed>[1]> = {}): Record<string, string> {
  const root = mkdtempSync(join(tmpdir(), 'seed-'));
  roots.push(root);
  writeSeed(join(root, 'seed'), {
    hostPrivateKey: 'HOSTKEY',
    clientPublicKey: 'ssh-ed25519 AAAA client',
    agentUid: 1000,
    agentGid: 1000,
    hostname: 'cowork-ws',
    ...over,
  });
  const text = readFileSync(join(root, 'seed', 'guest.env'), 'utf8');
  return Object.fromEntries(
    text
      .trim()
      .split('\n')
      .map((l) => {
        const i = l.indexOf('=');
        return [l.slice(0, i), l.slice(i + 1).replace(/^'|'$/g, '')];
      }),
  );
}

describe('guest addressing comes from the driver', () => {
  it("the seed carries the driver's NIC address as GUEST_ADDRESS, and nothing when the guest has no NIC", () => {
    expect(seedEnv({ guestCidr: QEMU_GUEST_NETWORK.guestCidr })).toMatchObject({
      GUEST_ADDRESS: '10.0.2.15/24',
    });
    expect(seedEnv({ guestCidr: VZ_GUEST_NETWORK.guestCidr })).not.toHaveProperty('GUEST_ADDRESS');
  });

  it.each([
    '10.0.2.15',
    '10.0.2.15/',
    '10.0.2.15/33',
    '10.0.2.15/0',
    '10.0.2.256/24',
    "10.0.2.15/24'\nAGENT_UID=0",
    '10.0.2.15/24 dev lo',
    '::1/128',
    '',
  ])('refuses a malformed guest address %j instead of handing it to the guest', (cidr) => {
    let caught: unknown;
    try {
      seedEnv({ guestCidr: cidr });
    } catch (err) {
      caught = err;
    }
    expect(CoworkError.is(caught, 'invalidArgument'), String(caught)).toBe(true);
    expect((caught as Error).message).toContain(JSON.stringify(cidr));
  });

  it("QEMU's guest reaches the proxy over SSH on its own loopback, at the one port the image's sshd permits", () => {
    expect(QEMU_GUEST_NETWORK.egress).toEqual({ address: '127.0.0.1', port: 3128, relay: 'ssh' });
    expect(new QemuDriver({ stateDir: '/nowhere' }).network).toBe(QEMU_GUEST_NETWORK);
    const sshd = readFileSync(new URL('../../src/guest/sshd_config', import.meta.url), 'utf8');
    const directive = (name: string) =>
      sshd
        .split('\n')
        .filter((l) => l.startsWith(`${name} `))
        .map((l) => l.slice(name.length + 1).trim());
    const { address, port } = QEMU_GUEST_NETWORK.egress;
    expect(directive('PermitListen')).toEqual([`${address}:${port}`]);
    expect(directive('GatewayPorts')).toEqual(['no']);
    expect(directive('AllowStreamLocalForwarding')).toEqual(['no']);
  });

  it('each driver states its transport, and the VZ guest (no NIC) reaches the proxy on its own loopback', () => {
    expect(QEMU_GUEST_NETWORK.transport).toBe('tcp-forward');
    expect(VZ_GUEST_NETWORK).toEqual({
      transport: 'vsock',
      egress: { address: '127.0.0.1', port: 3128, relay: 'driver' },
    });
  });
});

describe('the sandbox chooses from capabilities, not from the driver name', () => {
  const virtiofsOnly = { name: 'qemu' as const, capabilities: VZ_CAPABILITIES };
  const both: { name: 'vz'; capabilities: DriverCapabilities } = {
    name: 'vz',
    capabilities: { shareModes: ['9p', 'virtiofs'], accels: ['auto', 'tcg'], gracefulShutdown: false },
  };

  it('refuses a share mode the driver does not declare, naming the setting and what is offered', () => {
    let caught: unknown;
    try {
      checkCapabilities(virtiofsOnly, { share: '9p', accel: 'auto' });
    } catch (err) {
      caught = err;
    }
    expect(CoworkError.is(caught, 'invalidArgument')).toBe(true);
    expect((caught as Error).message).toMatch(/vm\.share "9p".*qemu driver.*offers virtiofs/);
  });

  it('refuses an accelerator the driver does not declare', () => {
    expect(() => checkCapabilities(both, { share: 'auto', accel: 'kvm' })).toThrow(
      /vm\.accel "kvm".*vz driver.*offers auto, tcg/,
    );
  });

  it('accepts what is declared, whatever the name', () => {
    expect(() => checkCapabilities(both, { share: '9p', accel: 'tcg' })).not.toThrow();
    expect(() => checkCapabilities(virtiofsOnly, { share: 'auto', accel: 'hvf' })).not.toThrow();
    expect(() => checkCapabilities(virtiofsOnly, { share: 'virtiofs', accel: 'auto' })).not.toThrow();
  });
});

describe('the driver says how its VM process ended', () => {
  it.each([
    [['qemu', null, 'SIGKILL'], 'the VM process (qemu) was killed by SIGKILL'],
    [['qemu', 1, null], 'the VM process (qemu) exited with code 1'],
    [['qemu', null, null], 'the VM process (qemu) could not be started'],
    [['qemu', null, 'SIGKILL', 'virtiofsd (workspace share) exited'], 'virtiofsd (workspace share) exited'],
  ] as const)('%j → %s', (args, text) => {
    expect(describeVmExit(...(args as unknown as Parameters<typeof describeVmExit>))).toBe(text);
  });
});
