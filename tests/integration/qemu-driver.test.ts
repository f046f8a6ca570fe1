import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import type { BootImage, VmExitInfo, VmHandle } from '../../src/host/vm/driver.js';
import { cleanupStrays, QemuDriver } from '../../src/host/vm/qemu/index.js';
import { waitFor } from '../helpers/wait.js';
import {
  baseImage,
  type GuestDirs,
  guestDirs,
  guestSpec,
  processAlive,
  processesMentioning,
  readGreeting,
  writeInitramfs,
} from './qemu-fixtures.js';

/**
 * The QEMU driver against the real guest image under TCG (KVM is broken here and must be
 * detected as such). One full boot per scenario that needs a live guest; the failure paths use
 * the image's kernel with a tiny busybox initramfs.
 */

let image: BootImage;
const cleanups: (() => void)[] = [];

beforeAll(async () => {
  image = await baseImage();
});

afterAll(() => {
  for (const c of cleanups.reverse()) c();
});

async function dirs(prefix: string): Promise<GuestDirs> {
  const d = await guestDirs(prefix);
  cleanups.push(d.cleanup);
  return d;
}

function errorOf(p: Promise<unknown>): Promise<CoworkError> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => {
      expect(e).toBeInstanceOf(CoworkError);
      return e as CoworkError;
    },
  );
}

describe('accelerator', () => {
  it('auto resolves to tcg on this host (nested KVM aborts or hangs) and remembers it', async () => {
    const d = await dirs('qemu-accel');
    const driver = new QemuDriver({ stateDir: d.stateDir, probeKernel: image.kernel, env: {} });
    const probe = await driver.probe();
    expect(probe.ok).toBe(true);
    expect(probe.accel).toBe('tcg');
    expect(probe.accelReason).toMatch(/KVM unusable|does not exist|not readable/);
    expect(probe.details?.qemuVersion).toMatch(/^\d+\.\d+/);
    if (existsSync('/dev/kvm')) {
      const cache = JSON.parse(readFileSync(join(d.stateDir, 'accel.json'), 'utf8'));
      expect(Object.values(cache.verdicts)).toEqual([
        expect.objectContaining({ accel: 'tcg', payload: 'kernel' }),
      ]);
      expect((await driver.probe()).accelReason).toMatch(/remembered/);
    }
  });

  it('COWORK_VM_ACCEL=kvm without a usable /dev/kvm, or hvf on Linux, is refused clearly', async () => {
    const d = await dirs('qemu-accel-forced');
    const driver = new QemuDriver({ stateDir: d.stateDir, env: { ...process.env, COWORK_VM_ACCEL: 'hvf' } });
    const probe = await driver.probe();
    expect(probe.ok).toBe(false);
    expect(probe.reason).toMatch(/hvf needs macOS/);
    expect(probe.fix).toMatch(/--accel tcg/);
    const err = await errorOf(driver.start(guestSpec(d, image)));
    expect(err.code).toBe('unsupported');
  });
});

describe('a booted guest', () => {
  let d: GuestDirs;
  let vm: VmHandle;
  const progress: string[] = [];

  beforeAll(async () => {
    d = await dirs('qemu-boot');
    const driver = new QemuDriver({ stateDir: d.stateDir });
    vm = await driver.start(guestSpec(d, image), { onProgress: (l) => progress.push(l) });
  });

  afterAll(async () => {
    await vm?.stop({ graceful: false });
  });

  it('resolves only after the readiness line, reporting what it used', () => {
    expect(vm.state).toBe('running');
    expect(readFileSync(vm.consoleLogPath, 'utf8')).toMatch(/COWORK-READY \{.*"sshd":true/);
    expect(progress.some((l) => l.startsWith('COWORK-READY'))).toBe(true);
    expect(progress[0]).toMatch(/^accelerator: tcg/);
    expect(vm.info.accel).toBe('tcg');
    // root here: virtiofsd is usable, so auto picks virtiofs
    expect(vm.info.shareMode).toBe(process.getuid?.() === 0 ? 'virtiofs' : '9p');
    expect(Object.keys(vm.info.hostPorts)).toEqual(['22']);
  });

  it('writes a pid file and runs QEMU with the console in runDir', () => {
    const pid = Number(readFileSync(join(d.runDir, 'qemu.pid'), 'utf8'));
    expect(pid).toBe(vm.pid);
    expect(processAlive(pid)).toBe(true);
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toContain('restrict=on');
  });

  it('connect(22) reaches the guest sshd through the forwarded loopback port', async () => {
    expect(await readGreeting(await vm.connect(22))).toMatch(/^SSH-2.0-OpenSSH/);
    // and again: every connect is a new stream
    expect(await readGreeting(await vm.connect(22))).toMatch(/^SSH-2.0-OpenSSH/);
  });

  it('connect to a port that is not forwarded is refused', async () => {
    expect((await errorOf(vm.connect(80))).code).toBe('invalidArgument');
  });

  it('stop (graceful) ends QEMU and virtiofsd, cleans up, and reports stopped', async () => {
    const pid = vm.pid!;
    const hostPort = vm.info.hostPorts[22]!;
    const exits: VmExitInfo[] = [];
    vm.on('exit', (i) => exits.push(i));
    const info = await vm.stop({ graceful: true, timeoutMs: 20_000 });
    expect(info.state).toBe('stopped');
    expect(info.consoleTail).toContain('cowork-init: powering off'); // the ACPI power button arrived
    expect(vm.state).toBe('stopped');
    expect(await vm.exited).toEqual(info);
    expect(exits).toEqual([info]);
    expect(processAlive(pid)).toBe(false);
    expect(processesMentioning(d.root)).toEqual([]);
    expect(existsSync(join(d.runDir, 'qemu.pid'))).toBe(false);
    expect((await errorOf(vm.connect(22))).code).toBe('invalidState');
    // nothing listens on the forwarded port any more
    const refused = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(hostPort, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    expect(refused).toBe(true);
    expect(await vm.stop()).toEqual(info); // idempotent
  });
});

describe('a guest that dies', () => {
  it('killing QEMU gives state crashed, an exit event and a resolved exited promise', async () => {
    const d = await dirs('qemu-crash');
    // The first port handed out is held by another listener: QEMU cannot bind it and the driver retries.
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const blocked = (blocker.address() as { port: number }).port;
    let calls = 0;
    const { freeLoopbackPort } = await import('../../src/host/vm/qemu/host-facts.js');
    const driver = new QemuDriver({
      stateDir: d.stateDir,
      allocatePort: async () => (calls++ === 0 ? blocked : freeLoopbackPort()),
    });
    const progress: string[] = [];
    try {
      const vm = await driver.start(guestSpec(d, image), {
        onProgress: (l) => progress.push(l),
      });
      expect(progress.some((l) => /retrying/.test(l))).toBe(true);
      expect(vm.info.hostPorts[22]).not.toBe(blocked);
      expect(await readGreeting(await vm.connect(22))).toMatch(/^SSH-2.0-OpenSSH/);
      const exit = new Promise<VmExitInfo>((resolve) => vm.on('exit', resolve));
      process.kill(vm.pid!, 'SIGKILL');
      const info = await vm.exited;
      expect(info).toMatchObject({
        state: 'crashed',
        signal: 'SIGKILL',
        reason: 'the VM process (qemu) was killed by SIGKILL',
      });
      expect(info.consoleTail).toContain('COWORK-READY');
      expect(info.consoleTail).not.toContain('[host]'); // a QEMU crash is not blamed on a helper
      expect(await exit).toEqual(info);
      expect(vm.state).toBe('crashed');
    } finally {
      blocker.close();
    }
  });
});

describe('a virtiofs guest whose virtiofsd dies', () => {
  it('is ended as crashed, saying why (fail closed: the workspace would hang)', async () => {
    const d = await dirs('qemu-vfsd');
    const vm = await new QemuDriver({ stateDir: d.stateDir }).start(
      guestSpec(d, image, { shareMode: 'virtiofs' }),
    );
    if (process.getuid?.() !== 0) {
      // Debian's virtiofsd needs root: an ordinary user gets 9p instead, never a failed start.
      expect(vm.info.shareMode).toBe('9p');
      await vm.stop({ graceful: false });
      return;
    }
    expect(vm.info.shareMode).toBe('virtiofs');
    const vfsdPid = Number(readFileSync(join(d.runDir, 'virtiofsd.pid'), 'utf8'));
    expect(processAlive(vfsdPid)).toBe(true);
    process.kill(vfsdPid, 'SIGKILL');
    const info = await vm.exited;
    expect(info.state).toBe('crashed');
    expect(info.consoleTail).toMatch(/\[host\] virtiofsd \(workspace share\) exited \(SIGKILL\)/);
    // The helper's death is the reason, not the SIGKILL the driver then sent to QEMU.
    expect(info.reason).toMatch(/^virtiofsd \(workspace share\) exited \(SIGKILL\)/);
    expect(processesMentioning(d.root)).toEqual([]);
  });
});

describe('boot failures', () => {
  it("a guest whose seed lacks the driver's GUEST_ADDRESS refuses to boot, saying which key is missing", async () => {
    const d = await dirs('qemu-noaddr');
    const envFile = join(d.seed, 'guest.env');
    const lines = readFileSync(envFile, 'utf8').split('\n');
    expect(lines).toContain("GUEST_ADDRESS='10.0.2.15/24'");
    writeFileSync(envFile, lines.filter((l) => !l.startsWith('GUEST_ADDRESS=')).join('\n'));
    const driver = new QemuDriver({ stateDir: d.stateDir });
    const err = await errorOf(driver.start(guestSpec(d, image, { shareMode: '9p' })));
    expect(err.code).toBe('unavailable');
    expect(err.message).toMatch(/network interface .* guest\.env has no GUEST_ADDRESS/);
    expect(processesMentioning(d.root)).toEqual([]);
  });

  it('COWORK-FATAL rejects start with the reason and the last console lines, and kills QEMU', async () => {
    const d = await dirs('qemu-fatal');
    const initrd = join(d.root, 'fatal.img');
    writeInitramfs(
      initrd,
      '#!/bin/busybox sh\necho "COWORK-FATAL no workspace share (test)" > /dev/console\nexec /bin/busybox sleep 600\n',
    );
    const driver = new QemuDriver({ stateDir: d.stateDir });
    const err = await errorOf(driver.start(guestSpec(d, { ...image, initrd }, { shareMode: '9p' })));
    expect(err.code).toBe('unavailable');
    expect(err.message).toMatch(/the guest failed to boot: no workspace share \(test\)/);
    expect(err.message).toMatch(/last console lines:[\s\S]*COWORK-FATAL/);
    expect(processesMentioning(d.root)).toEqual([]);
  });

  it('a guest that never reports ready times out, and QEMU is killed', async () => {
    const d = await dirs('qemu-silent');
    const initrd = join(d.root, 'silent.img');
    writeInitramfs(initrd, '#!/bin/busybox sh\nexec /bin/busybox sleep 600\n');
    const driver = new QemuDriver({ stateDir: d.stateDir });
    const err = await errorOf(
      driver.start(guestSpec(d, { ...image, initrd }, { shareMode: '9p', bootTimeoutMs: 4000 })),
    );
    expect(err.code).toBe('timeout');
    expect(err.message).toMatch(/did not report ready within 4000 ms/);
    expect(processesMentioning(d.root)).toEqual([]);
  });

  it('aborting start kills QEMU and rejects with cancelled', async () => {
    const d = await dirs('qemu-abort');
    const initrd = join(d.root, 'silent.img');
    writeInitramfs(initrd, '#!/bin/busybox sh\nexec /bin/busybox sleep 600\n');
    const driver = new QemuDriver({ stateDir: d.stateDir });
    const ac = new AbortController();
    let notStarted: unknown;
    // Abort once QEMU runs (its command line names the test folder), so there is a process to kill.
    const abortOnceRunning = () =>
      waitFor(() => processesMentioning(d.root).length > 0, 'QEMU to start', {
        timeoutMs: 60_000,
        intervalMs: 50,
      })
        .catch((e: unknown) => (notStarted = e))
        .finally(() => ac.abort());
    const started = driver.start(guestSpec(d, { ...image, initrd }, { shareMode: '9p' }), {
      signal: ac.signal,
      onProgress: (l) => {
        if (l.startsWith('workspace share')) void abortOnceRunning();
      },
    });
    const err = await errorOf(started);
    expect(notStarted).toBeUndefined();
    expect(err.code).toBe('cancelled');
    expect(processesMentioning(d.root)).toEqual([]);
  });

  it('a missing image file or share folder is refused before QEMU runs', async () => {
    const d = await dirs('qemu-missing');
    const driver = new QemuDriver({ stateDir: d.stateDir });
    const noRoot = await errorOf(driver.start(guestSpec(d, { ...image, rootfs: join(d.root, 'nope.ext4') })));
    expect(noRoot.code).toBe('notFound');
    expect(noRoot.message).toMatch(/rootfs .* is missing — rebuild the image/);
    const spec = guestSpec(d, image);
    const noWs = await errorOf(
      driver.start({ ...spec, workspace: { ...spec.workspace, hostPath: join(d.root, 'gone') } }),
    );
    expect(noWs.message).toMatch(/share "workspace" folder .* does not exist/);
  });

  it('cleanupStrays kills a QEMU left behind by a dead host process and ignores recycled pids', async () => {
    const d = await dirs('qemu-stray');
    const { spawn } = await import('node:child_process');
    const { writeFileSync } = await import('node:fs');
    // A stand-in for an orphaned QEMU: a real qemu process whose command line names runDir.
    const orphan = spawn(
      'qemu-system-x86_64',
      [
        '-M',
        'none',
        '-nodefaults',
        '-display',
        'none',
        '-chardev',
        `file,id=c,path=${join(d.runDir, 'console.log')}`,
      ],
      { stdio: 'ignore' },
    );
    const exited = new Promise((r) => orphan.once('exit', r));
    writeFileSync(join(d.runDir, 'qemu.pid'), `${orphan.pid}\n`);
    writeFileSync(join(d.runDir, 'virtiofsd.pid'), `${process.pid}\n`); // not a virtiofsd: must survive
    expect(await cleanupStrays(d.runDir)).toEqual([orphan.pid]);
    await exited;
    expect(processAlive(process.pid)).toBe(true);
    expect(existsSync(join(d.runDir, 'qemu.pid'))).toBe(false);
  });
});
