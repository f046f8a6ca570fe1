import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { CoworkError } from '../../src/host/errors.js';
import { requireProvided } from '../../src/host/host-requirements.js';
import { hostPaths } from '../../src/host/paths.js';
import { agentIds, writeSeed } from '../../src/host/sandbox/seed.js';
import { ensureSandboxKeys, type SandboxKeys } from '../../src/host/ssh/keys.js';
import type { Arch, BootImage, GuestNetwork, VmSpec } from '../../src/host/vm/driver.js';
import { ImageStore } from '../../src/host/vm/images.js';
import { QEMU_GUEST_NETWORK } from '../../src/host/vm/qemu/index.js';

/** Shared by the QEMU driver and driver-contract integration tests: real image, real folders. */

export const BUILD_HINT = 'build it first: node bin/cowork-vm.js image build base (or npm run setup)';

/** The current `base` image; a missing image FAILS the test with the command that builds it. */
export async function baseImage(arch: Arch = 'x86_64'): Promise<BootImage> {
  try {
    const resolved = await new ImageStore(hostPaths()).resolve('base', arch);
    return resolved.boot;
  } catch (err) {
    throw new CoworkError(
      'notFound',
      `the base guest image is not available (${(err as Error).message}) — ${BUILD_HINT}`,
      err,
    );
  }
}

export interface GuestDirs {
  root: string;
  workspace: string;
  seed: string;
  runDir: string;
  stateDir: string;
  /** The keys in the seed, made and loaded by the code a sandbox uses. */
  keys: SandboxKeys;
  cleanup(): void;
}

/**
 * Folders for one guest, with the seed share written by the sandbox's own seed code
 * (`writeSeed`, `agentIds`, `ensureSandboxKeys`) so these tests boot the guest on exactly the
 * contract a real start hands it (docs/guest-contract.md), not on a copy of it.
 */
export async function guestDirs(
  prefix: string,
  network: GuestNetwork = QEMU_GUEST_NETWORK,
): Promise<GuestDirs> {
  const root = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const workspace = join(root, 'workspace');
  const runDir = join(root, 'run');
  const stateDir = join(root, 'state');
  for (const d of [workspace, runDir, stateDir]) mkdirSync(d, { recursive: true });
  const seed = join(root, 'seed');
  const keys = await ensureSandboxKeys(join(root, 'keys'));
  const ids = agentIds(workspace);
  writeSeed(seed, {
    hostPrivateKey: keys.hostPrivateKey,
    clientPublicKey: keys.authorizedKeysLine,
    agentUid: ids.uid,
    agentGid: ids.gid,
    hostname: prefix,
    guestCidr: network.guestCidr,
  });
  return {
    root,
    workspace,
    seed,
    runDir,
    stateDir,
    keys,
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

export function guestSpec(dirs: GuestDirs, image: BootImage, over: Partial<VmSpec> = {}): VmSpec {
  return {
    name: 'qemu-test',
    cpus: 1,
    memoryMiB: 512,
    image,
    workspace: { tag: 'workspace', hostPath: dirs.workspace, readOnly: false },
    seed: { tag: 'seed', hostPath: dirs.seed, readOnly: true },
    shareMode: 'auto',
    accel: 'auto',
    guestPorts: [22],
    runDir: dirs.runDir,
    bootTimeoutMs: 150_000,
    ...over,
  };
}

/** First bytes a guest port sends (the SSH server speaks first). */
export function readGreeting(stream: Duplex, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(
      () => reject(new CoworkError('timeout', `no greeting, got ${JSON.stringify(text)}`)),
      timeoutMs,
    );
    stream.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (text.includes('\n')) {
        clearTimeout(timer);
        stream.destroy();
        resolve(text.split('\n')[0]!.trim());
      }
    });
    stream.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Pids of processes whose command line mentions `needle` (to prove nothing was left behind). */
export function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/**
 * A tiny initramfs (cpio newc, gzip) with static busybox and the given /init script, for boot
 * paths the real image never takes on purpose (COWORK-FATAL, never ready). No root needed: the
 * /dev/console node is written straight into the archive.
 */
export function writeInitramfs(path: string, initScript: string): void {
  // From the host requirements list: missing → FAILS with the package and its install line.
  const busybox = requireProvided('/bin/busybox');
  const entries: { name: string; mode: number; data?: Buffer; rdev?: [number, number] }[] = [
    { name: 'bin', mode: 0o040755 },
    { name: 'dev', mode: 0o040755 },
    { name: 'dev/console', mode: 0o020600, rdev: [5, 1] },
    { name: 'proc', mode: 0o040755 },
    { name: 'bin/busybox', mode: 0o100755, data: readFileSync(busybox) },
    { name: 'init', mode: 0o100755, data: Buffer.from(initScript) },
  ];
  const parts: Buffer[] = [];
  const pad = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  let ino = 1;
  const push = (
    name: string,
    mode: number,
    data: Buffer = Buffer.alloc(0),
    rdev: [number, number] = [0, 0],
  ) => {
    const fields = [ino++, mode, 0, 0, 1, 0, data.length, 0, 0, rdev[0], rdev[1], name.length + 1, 0];
    const header = `070701${fields.map((f) => f.toString(16).padStart(8, '0')).join('')}`;
    const head = Buffer.concat([Buffer.from(header), Buffer.from(`${name}\0`)]);
    parts.push(head, pad(head.length), data, pad(data.length));
  };
  for (const e of entries) push(e.name, e.mode, e.data, e.rdev);
  push('TRAILER!!!', 0);
  writeFileSync(path, gzipSync(Buffer.concat(parts)));
}
