import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import type {
  Arch,
  BootImage,
  GuestNetwork,
  VmDriver,
  VmExitInfo,
  VmHandle,
} from '../../src/host/vm/driver.js';
import { baseImage, type GuestDirs, guestDirs, guestSpec, readGreeting } from './qemu-fixtures.js';

/**
 * The VmDriver contract, written once (here) and run against every driver this host can run:
 * QEMU and, on macOS, VZ from driver-contract.test.ts; the VZ driver against the fake bridge
 * from vz-fake-bridge.test.ts (Linux). Every expectation about shares, accelerators and
 * transport follows what the driver declares (capabilities, network), never its name: a driver
 * is held to its own declaration.
 */

export interface DriverCase {
  name: string;
  arch: Arch;
  /** The guest network the seed is written for; the probe test checks the driver declares the same. */
  network: () => Promise<GuestNetwork>;
  make: (stateDir: string) => Promise<VmDriver>;
  /** The image it boots; default: the built `base` image of `arch`. */
  image?: () => Promise<BootImage>;
  /**
   * false: skip the probe test (a driver run against a fake: its probe judges the real host,
   * which cannot run it). Default true.
   */
  probe?: boolean;
}

export function contract(c: DriverCase): void {
  let image: BootImage;
  const cleanups: (() => void)[] = [];

  async function dirs(prefix: string): Promise<GuestDirs> {
    const d = await guestDirs(`${c.name}-${prefix}`, await c.network());
    cleanups.push(d.cleanup);
    return d;
  }

  async function rejection(p: Promise<unknown>): Promise<CoworkError> {
    const err = await p.then(
      () => new Error('expected a rejection'),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CoworkError);
    return err as CoworkError;
  }

  beforeAll(async () => {
    image = await (c.image ? c.image() : baseImage(c.arch));
  });

  afterAll(() => {
    for (const f of cleanups.reverse()) f();
  });

  // Not registered at all for a fake-backed driver (no skipped test to misread as passed).
  if (c.probe !== false)
    it('probe() says it can run here and names a concrete accelerator it supports', async () => {
      const d = await dirs('probe');
      const driver = await c.make(d.stateDir);
      const probe = await driver.probe();
      expect(probe, probe.reason).toMatchObject({ ok: true });
      expect(probe.accel).toBeDefined();
      expect(probe.accel).not.toBe('auto');
      expect(driver.capabilities.accels).toContain(probe.accel);
      expect(driver.name).toBe(c.name);
      expect(driver.network).toEqual(await c.network());
      expect(driver.capabilities.shareModes.length).toBeGreaterThan(0);
    });

  it('start() refuses an already aborted signal and a missing kernel without booting', async () => {
    const d = await dirs('refuse');
    const driver = await c.make(d.stateDir);
    const ac = new AbortController();
    ac.abort();
    await expect(driver.start(guestSpec(d, image), { signal: ac.signal })).rejects.toThrow();
    const missing = await rejection(
      driver.start(guestSpec(d, { ...image, kernel: join(d.root, 'no-kernel') })),
    );
    expect(['notFound', 'invalidArgument', 'unavailable']).toContain(missing.code);
  });

  describe('lifecycle', () => {
    let d: GuestDirs;
    let driver: VmDriver;
    let vm: VmHandle;
    const exits: VmExitInfo[] = [];

    beforeAll(async () => {
      d = await dirs('life');
      driver = await c.make(d.stateDir);
      vm = await driver.start(guestSpec(d, image));
      vm.on('exit', (i) => exits.push(i));
    });

    afterAll(async () => {
      await vm?.stop({ graceful: false });
    });

    it('start() resolves only after the guest printed its readiness line', () => {
      expect(vm.state).toBe('running');
      expect(readFileSync(vm.consoleLogPath, 'utf8')).toContain('COWORK-READY');
    });

    it('reports what it used, within its declared capabilities', () => {
      expect(driver.capabilities.shareModes).toContain(vm.info.shareMode);
      expect(driver.capabilities.accels).toContain(vm.info.accel);
      expect(vm.info.accel).not.toBe('auto');
      // A forwarded transport names its loopback port; vsock has none to name.
      if (driver.network.transport === 'tcp-forward') expect(vm.info.hostPorts[22]).toBeGreaterThan(0);
      else expect(vm.info.hostPorts).toEqual({});
    });

    it('connect(22) gives independent byte streams to the guest sshd', async () => {
      const [a, b] = await Promise.all([vm.connect(22), vm.connect(22)]);
      const banners = await Promise.all([readGreeting(a), readGreeting(b)]);
      for (const banner of banners) expect(banner).toMatch(/^SSH-2.0-OpenSSH/);
    });

    it('connect() to a port outside spec.guestPorts is refused', async () => {
      expect((await rejection(vm.connect(2))).code).toBe('invalidArgument');
    });

    it('stop() resolves with state stopped, once, and is idempotent', async () => {
      const info = await vm.stop({ graceful: true, timeoutMs: 15_000 });
      expect(info.state).toBe('stopped');
      expect(typeof info.consoleTail).toBe('string');
      expect(vm.state).toBe('stopped');
      expect(await vm.exited).toEqual(info);
      expect(await vm.stop()).toEqual(info);
      expect(exits).toEqual([info]);
      expect((await rejection(vm.connect(22))).code).toBe('invalidState');
    });
  });

  it('a VM that dies without stop() ends as crashed, with exited resolved, one exit event and a reason', async () => {
    const d = await dirs('crash');
    const driver = await c.make(d.stateDir);
    // The first declared share mode, asked for by name (the lifecycle block boots 'auto'): QEMU
    // lists 9p first (any user can run it), VZ has virtiofs only.
    const share = driver.capabilities.shareModes[0]!;
    const vm = await driver.start(guestSpec(d, image, { shareMode: share }));
    expect(vm.info.shareMode).toBe(share);
    expect(await readGreeting(await vm.connect(22))).toMatch(/^SSH-2.0-OpenSSH/);
    expect(vm.pid).toBeGreaterThan(1);
    const events: VmExitInfo[] = [];
    vm.on('exit', (i) => events.push(i));
    process.kill(vm.pid!, 'SIGKILL');
    const info = await vm.exited;
    expect(info.state).toBe('crashed');
    expect(vm.state).toBe('crashed');
    expect(events).toEqual([info]);
    // The driver says what happened in its own words; nothing above it names the hypervisor.
    expect(info.signal).toBe('SIGKILL');
    expect(info.reason).toMatch(/^the VM process \(.+\) was killed by SIGKILL$/);
  });
}
