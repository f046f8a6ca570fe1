import { fork } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import { ensureSandboxKeys } from '../../src/host/ssh/keys.js';
import type { Arch, BootImage, VmExitInfo, VmHandle } from '../../src/host/vm/driver.js';
import { runnerScript, VZ_GUEST_NETWORK, VzDriver } from '../../src/host/vm/vz/index.js';
import { startSshd, type TestSshd } from '../helpers/sshd.js';
import { contract } from './driver-contract-suite.js';
import { type GuestDirs, guestDirs, guestSpec, processesMentioning, readGreeting } from './qemu-fixtures.js';

/**
 * The VZ driver, its handle and its runner, for real on Linux: the runner runs in its own child
 * process (the compiled dist/ copy, started with this node as COWORK_VM_VZ_NODE) and loads
 * tests/helpers/fake-vz-bridge.cjs instead of the addon. Only Virtualization.framework itself is
 * fake: no VM boots. SSH is a real sshd, reached through the unix-socket fd the fake hands over,
 * as VZ hands the host a unix socket relayed to the guest's vsock. What this cannot show: that
 * the real addon keeps the same contract (native/vz-bridge) — scripts/macos-acceptance.sh does.
 */

const FAKE = fileURLToPath(new URL('../helpers/fake-vz-bridge.cjs', import.meta.url));
const VZ_SRC = fileURLToPath(new URL('../../src/host/vm/vz/', import.meta.url));
const RUNNER = runnerScript(new URL('../../src/host/vm/vz/driver.ts', import.meta.url).href);
const ARCH: Arch = process.arch === 'arm64' ? 'aarch64' : 'x86_64';

let sshd: TestSshd;
let env: NodeJS.ProcessEnv;
const cleanups: (() => void)[] = [];

/** A kernel header VZ's loader accepts for this host's arch (arm64 Image magic, or bzImage "HdrS"). */
function kernelHeader(arch: Arch): Buffer {
  const b = Buffer.alloc(1024);
  if (arch === 'aarch64') b.writeUInt32LE(0x644d5241, 56);
  else b.write('HdrS', 0x202, 'latin1');
  return b;
}

function fakeImage(kernel: Buffer = kernelHeader(ARCH)): BootImage {
  const dir = mkdtempSync(join(tmpdir(), 'vz-fake-image-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  for (const f of ['initrd.img', 'rootfs.ext4']) writeFileSync(join(dir, f), '');
  writeFileSync(join(dir, 'vmlinuz'), kernel);
  return {
    kernel: join(dir, 'vmlinuz'),
    initrd: join(dir, 'initrd.img'),
    rootfs: join(dir, 'rootfs.ext4'),
    arch: ARCH,
  };
}

async function dirs(prefix: string): Promise<GuestDirs> {
  const d = await guestDirs(`vz-fake-${prefix}`, VZ_GUEST_NETWORK);
  cleanups.push(d.cleanup);
  return d;
}

const calls = (vm: { consoleLogPath: string }): string[] =>
  readFileSync(`${vm.consoleLogPath}.calls`, 'utf8').trim().split('\n');

async function boot(
  prefix: string,
  kernelArgs: string[] = [],
  opts: { connectTimeoutMs?: number } = {},
): Promise<{ vm: VmHandle; exits: VmExitInfo[]; d: GuestDirs }> {
  const d = await dirs(prefix);
  const vm = await new VzDriver({ env, ...opts }).start(guestSpec(d, fakeImage(), { kernelArgs }));
  const exits: VmExitInfo[] = [];
  vm.on('exit', (i) => exits.push(i));
  cleanups.push(() => void vm.stop({ graceful: false }));
  return { vm, exits, d };
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
  // The runner runs as plain JS from dist/: fail with the fix when that copy is missing or older
  // than its sources (a stale dist would test yesterday's runner).
  if (!existsSync(RUNNER)) throw new Error(`${RUNNER} is missing — run \`npm run build\` first`);
  const built = statSync(RUNNER).mtimeMs;
  for (const f of readdirSync(VZ_SRC)) {
    if (statSync(join(VZ_SRC, f)).mtimeMs > built)
      throw new Error(`dist/ is older than src/host/vm/vz/${f} — run \`npm run build\` first`);
  }
  const keyDir = mkdtempSync(join(tmpdir(), 'vz-fake-keys-'));
  cleanups.push(() => rmSync(keyDir, { recursive: true, force: true }));
  const keys = await ensureSandboxKeys(keyDir);
  sshd = await startSshd({
    hostPrivateKey: keys.hostPrivateKey,
    authorizedKeysLine: keys.authorizedKeysLine,
  });
  env = {
    ...process.env,
    COWORK_VM_TEST_FAKE_VZ: '1',
    COWORK_VM_VZ_BRIDGE_MODULE: FAKE,
    COWORK_VM_VZ_NODE: process.execPath,
    FAKE_VZ_PORTS: `22:${sshd.port}`,
  };
});

afterAll(async () => {
  for (const f of cleanups.reverse()) f();
  await sshd?.stop();
});

describe('VmDriver contract: vz against the fake bridge (Linux)', () =>
  contract({
    name: 'vz',
    arch: ARCH,
    network: async () => VZ_GUEST_NETWORK,
    make: async () => new VzDriver({ env }),
    image: async () => fakeImage(),
    probe: false, // probe() judges the real host (not a Mac): vz-probe.test.ts covers it
  }));

describe('VZ driver and runner against the fake bridge', () => {
  it('start resolves on the readiness line, and the egress listener is attached only after start completed', async () => {
    const host: Server = createServer((s) => {
      s.once('data', (d) =>
        s.end(d.toString().includes('hello-from-guest') ? 'hello-from-host\n' : 'what?\n'),
      );
    });
    await new Promise<void>((r) => host.listen(0, '127.0.0.1', r));
    cleanups.push(() => host.close());
    const d = await dirs('listen');
    const port = (host.address() as { port: number }).port;
    const spec = guestSpec(d, fakeImage(), {
      kernelArgs: ['fakevz.guest-dial'],
      egress: { hostPort: port, guestAddress: '127.0.0.1', guestPort: 3128 },
    });
    const vm = await new VzDriver({ env }).start(spec);
    cleanups.push(() => void vm.stop({ graceful: false }));
    expect(vm.state).toBe('running');
    expect(readFileSync(vm.consoleLogPath, 'utf8')).toContain('COWORK-READY');
    // The guest's connection went through the runner's relay to the host port and back.
    await expect.poll(() => calls(vm), { timeout: 5000 }).toContain('guest-got:hello-from-host');
    const c = calls(vm);
    expect(c.slice(0, 3)).toEqual(['create', 'start:begin', 'start:end']);
    expect(c.indexOf('listen:3128')).toBeGreaterThan(c.indexOf('start:end'));
    expect(c.some((l) => l.startsWith('listen-too-early'))).toBe(false);
    // The stream is a unix socket (no remote address), as VZ's host-side fd is, passed on by the runner.
    const ssh = (await vm.connect(22)) as Socket;
    expect(ssh.remoteAddress).toBeUndefined();
    expect(await readGreeting(ssh)).toMatch(/^SSH-2.0-OpenSSH/);
    await vm.stop({ graceful: false });
  });

  it('a graceful stop ends with the runner exiting by itself (code 0, no signal), fast, and is idempotent', async () => {
    const { vm, exits } = await boot('stop');
    const t0 = Date.now();
    const info = await vm.stop({ graceful: true, timeoutMs: 10_000 });
    expect(Date.now() - t0).toBeLessThan(3_000); // the parent's SIGKILL would come after 15 s
    expect(info).toMatchObject({ state: 'stopped', code: 0, signal: null });
    expect(info.consoleTail).toContain('reboot: Power down');
    expect(await vm.stop()).toEqual(info);
    expect(await vm.stop({ graceful: false })).toEqual(info);
    expect(exits).toEqual([info]);
    const c = calls(vm);
    expect(c).toContain('requestStop');
    expect(c).not.toContain('stop'); // the guest obeyed: no forced stop
    expect(c.at(-1)).toBe('close');
  });

  it('a guest that ignores requestStop is force-stopped after the grace period, still ending stopped', async () => {
    const { vm, exits } = await boot('ignored', ['fakevz.requeststop-ignored']);
    const t0 = Date.now();
    const info = await vm.stop({ graceful: true, timeoutMs: 1_000 });
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(4_000); // well before the parent's SIGKILL (grace + 5 s)
    expect(info).toMatchObject({ state: 'stopped', code: 0, signal: null });
    expect(exits).toEqual([info]);
    const c = calls(vm);
    expect(c.indexOf('stop')).toBeGreaterThan(c.indexOf('requestStop'));
  });

  it('when VZ cannot ask the guest (requestStop false) the stop is forced at once', async () => {
    const { vm } = await boot('cannot-ask', ['fakevz.requeststop-false']);
    const t0 = Date.now();
    const info = await vm.stop({ graceful: true, timeoutMs: 10_000 });
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(info).toMatchObject({ state: 'stopped', code: 0, signal: null });
    expect(calls(vm)).toContain('stop');
  });

  it('a guest power-off after ready resolves exited once, as crashed (like QEMU), saying the guest powered off', async () => {
    const { vm, exits } = await boot('poweroff', ['fakevz.poweroff-after-ready=300']);
    expect(vm.state).toBe('running');
    const info = await vm.exited;
    expect(info).toMatchObject({ state: 'crashed', code: 0, signal: null });
    expect(info.reason).toMatch(/the guest powered itself off/);
    expect(vm.state).toBe('crashed');
    expect(exits).toEqual([info]);
    expect(await vm.stop()).toEqual(info);
    expect((await rejection(vm.connect(22))).code).toBe('invalidState');
  });

  it("VZ's didStopWithError ends the VM as crashed with VZ's error text in the reason", async () => {
    const { vm, exits } = await boot('vz-error', ['fakevz.error-after-ready=300']);
    const info = await vm.exited;
    expect(info.state).toBe('crashed');
    expect(info.reason).toContain('Internal Virtualization error. The virtual machine stopped unexpectedly.');
    expect(info.code).toBe(1);
    expect(exits).toEqual([info]);
  });

  it('connect() to a guest that never accepts rejects with unavailable, naming the port, within the timeout', async () => {
    const { vm } = await boot('connect-hang', ['fakevz.connect-hang'], { connectTimeoutMs: 1_000 });
    const t0 = Date.now();
    const err = await rejection(vm.connect(22));
    expect(Date.now() - t0).toBeLessThan(2_500);
    expect(err.code).toBe('unavailable');
    expect(err.message).toMatch(/guest port 22: the guest did not accept the vsock connection within 1 s/);
    expect(vm.state).toBe('running'); // one refused connection does not end the VM
    await vm.stop({ graceful: false });
  });

  it('a bridge whose connect never settles is cut off by the runner, not left pending', async () => {
    const { vm } = await boot('connect-stuck', ['fakevz.connect-never-settles'], { connectTimeoutMs: 800 });
    const t0 = Date.now();
    const err = await rejection(vm.connect(22));
    expect(Date.now() - t0).toBeLessThan(3_500);
    expect(err.message).toMatch(/guest port 22: the guest did not accept/);
    await vm.stop({ graceful: false });
  });

  it('an exception from create (bad configuration) rejects start with its message, and the runner exits', async () => {
    const d = await dirs('create-throws');
    const spec = guestSpec(d, fakeImage(), {
      kernelArgs: ['fakevz.create-throws=Invalid_virtio_file_system_tag_"work_space"'],
    });
    const err = await rejection(new VzDriver({ env }).start(spec));
    expect(err.code).toBe('unavailable');
    expect(err.message).toContain(
      'refused the VM configuration: Invalid virtio file system tag "work space"',
    );
    expect(processesMentioning(RUNNER)).toEqual([]);
  });

  it('a start that rejects ends start() with the reason and leaves no runner', async () => {
    const d = await dirs('start-rejects');
    const spec = guestSpec(d, fakeImage(), {
      kernelArgs: ['fakevz.start-rejects=Internal_Virtualization_error'],
    });
    const err = await rejection(new VzDriver({ env }).start(spec));
    expect(err.message).toContain('could not start the VM: Internal Virtualization error');
    expect(processesMentioning(RUNNER)).toEqual([]);
  });

  it('a boot cancelled or timed out before the readiness line rejects start() and leaves no runner', async () => {
    const d = await dirs('abort');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 30); // the fake prints READY ~200 ms after start
    const cancelled = await rejection(
      new VzDriver({ env }).start(guestSpec(d, fakeImage()), { signal: ac.signal }),
    );
    expect(cancelled.code).toBe('cancelled');
    expect(processesMentioning(RUNNER)).toEqual([]);
    const slow = await rejection(
      new VzDriver({ env }).start(guestSpec(d, fakeImage(), { bootTimeoutMs: 120 })),
    );
    expect(slow.code).toBe('timeout');
    expect(slow.message).toMatch(
      /no readiness line within 0\.12 s|start\(\) did not complete within 0\.12 s/,
    );
    expect(processesMentioning(RUNNER)).toEqual([]);
  });

  it('the runner refuses the fake bridge without its test guard, and start() says so', async () => {
    const d = await dirs('no-guard');
    const unguarded = { ...env, COWORK_VM_TEST_FAKE_VZ: undefined };
    const err = await rejection(new VzDriver({ env: unguarded }).start(guestSpec(d, fakeImage())));
    expect(err.message).toMatch(/COWORK_VM_VZ_BRIDGE_MODULE is only for tests.*COWORK_VM_TEST_FAKE_VZ=1/);
    expect(existsSync(`${join(d.runDir, 'console.log')}.calls`)).toBe(false); // the fake never loaded
  });

  it('a 9p share or a non-hvf accelerator is refused before anything is spawned', async () => {
    const d = await dirs('caps');
    const driver = new VzDriver({ env });
    expect((await rejection(driver.start(guestSpec(d, fakeImage(), { shareMode: '9p' })))).code).toBe(
      'invalidArgument',
    );
    expect((await rejection(driver.start(guestSpec(d, fakeImage(), { accel: 'kvm' })))).message).toMatch(
      /always uses hvf/,
    );
    expect(existsSync(join(d.runDir, 'console.log'))).toBe(false);
  });

  it('a compressed kernel, or an image of the other arch, is refused before anything is spawned', async () => {
    const d = await dirs('gzip');
    const gz = fakeImage(gzipSync(Buffer.alloc(4096, 7)));
    const err = await rejection(new VzDriver({ env }).start(guestSpec(d, gz)));
    expect(err.code).toBe('invalidArgument');
    expect(err.message).toMatch(/gzip file.*compressed/);
    expect(existsSync(join(d.runDir, 'console.log'))).toBe(false); // the driver stopped before its first file
    const other = new VzDriver({
      env,
      host: { platform: 'darwin', arch: ARCH === 'aarch64' ? 'amd64' : 'arm64' },
    });
    const arch = await rejection(other.start(guestSpec(d, fakeImage())));
    expect(arch.code).toBe('unsupported');
    expect(arch.message).toMatch(/cowork-vm image build base --arch (arm64|amd64)/);
    expect(existsSync(join(d.runDir, 'console.log'))).toBe(false);
  });
});

describe('the runner process on its own', () => {
  function runner() {
    const dir = mkdtempSync(join(tmpdir(), 'vz-runner-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, 'share'));
    const img = fakeImage();
    const consoleLog = join(dir, 'console.log');
    writeFileSync(consoleLog, '');
    const child = fork(RUNNER, [], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const exited = new Promise<{ code: number | null; signal: string | null }>((r) =>
      child.once('exit', (code, signal) => r({ code, signal })),
    );
    const messages: { type: string }[] = [];
    child.on('message', (m: { type: string }) => messages.push(m));
    const config = {
      kernel: img.kernel,
      initrd: img.initrd,
      rootfs: img.rootfs,
      cmdline: 'console=hvc0',
      cpus: 1,
      memoryMiB: 256,
      shares: [{ tag: 'workspace', path: join(dir, 'share'), readOnly: false }],
      consoleLog,
    };
    const callLog = () => readFileSync(`${consoleLog}.calls`, 'utf8').trim().split('\n');
    return { child, exited, messages, config, callLog };
  }

  it('defers a listen that arrives before start completed until after it', async () => {
    const r = runner();
    r.child.send({ type: 'start', config: r.config });
    r.child.send({ type: 'listen', port: 3128, hostPort: 9 });
    await expect.poll(() => r.messages.map((m) => m.type), { timeout: 5000 }).toContain('started');
    await expect.poll(r.callLog, { timeout: 5000 }).toContain('listen:3128');
    const c = r.callLog();
    expect(c.indexOf('listen:3128')).toBeGreaterThan(c.indexOf('start:end'));
    expect(c.some((l) => l.startsWith('listen-too-early'))).toBe(false);
    r.child.send({ type: 'stop', graceful: false, graceMs: 0 });
    expect(await r.exited).toEqual({ code: 0, signal: null });
  });

  it('force-stops the VM, closes the bridge and exits when the parent goes away', async () => {
    const r = runner();
    r.child.send({ type: 'start', config: r.config });
    await expect.poll(() => r.messages.map((m) => m.type), { timeout: 5000 }).toContain('started');
    r.child.disconnect();
    const { signal } = await r.exited;
    expect(signal).toBeNull();
    const c = r.callLog();
    expect(c).toContain('stop');
    expect(c.at(-1)).toBe('close');
  });

  it('refuses a message outside the protocol with a failed/protocol reply', async () => {
    const r = runner();
    r.child.send({ type: 'start', config: { ...r.config, cpus: 'many' } });
    await expect
      .poll(() => r.messages, { timeout: 5000 })
      .toContainEqual(expect.objectContaining({ type: 'failed', phase: 'protocol' }));
    r.child.kill('SIGKILL');
    await r.exited;
  });
});
