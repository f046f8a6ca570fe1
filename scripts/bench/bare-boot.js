import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoworkError } from '../../dist/host/errors.js';
import { requireProvided } from '../../dist/host/host-requirements.js';
// Internals of the QEMU driver, imported so the baseline resolves host facts exactly as it does.
import { findVirtiofsd, freeLoopbackPort, hostTscKhz } from '../../dist/host/vm/qemu/host-facts.js';
import { buildQemuArgs } from '../../dist/host/vm/qemu/index.js';
import { spawnVirtiofsd } from '../../dist/host/vm/qemu/virtiofsd.js';
import { newcArchive } from './cpio.js';

/**
 * The boot baseline: the sandbox's own kernel with a minimal busybox initramfs whose /init prints
 * one line and reboots (-no-reboot turns that into QEMU exiting). QEMU gets the command line
 * buildQemuArgs makes for the sandbox — same machine, accelerator, CPUs, memory, devices,
 * kernel command line — with only the initrd swapped, and is timed to that first userspace line.
 */

export const BARE_MARKER = 'COWORK-BENCH-BARE-USERSPACE';

export function writeBareInitramfs(dir) {
  const init = `#!/bin/busybox sh\n/bin/busybox echo ${BARE_MARKER}\n/bin/busybox reboot -f\n`;
  const archive = newcArchive([
    { dir: 'bin' },
    { dir: 'dev' },
    { dir: 'proc' },
    { dir: 'sys' },
    // Without /dev/console in the initramfs, /init would start with no stdout at all.
    { chr: 'dev/console', major: 5, minor: 1, mode: 0o600 },
    { file: 'bin/busybox', data: readFileSync(requireProvided('/bin/busybox')), mode: 0o755 },
    { file: 'init', data: Buffer.from(init), mode: 0o755 },
  ]);
  const path = join(dir, 'bare-initrd.cpio');
  writeFileSync(path, archive);
  return path;
}

/** Resolves with { firstLine, marker } (performance.now() stamps) once the marker is on the console. */
async function waitForMarker(consolePath, qemu, timeoutMs) {
  const deadline = performance.now() + timeoutMs;
  let firstLine;
  let exited = false;
  qemu.once('exit', () => {
    exited = true;
  });
  while (performance.now() < deadline) {
    const text = await readFile(consolePath, 'utf8').catch(() => '');
    if (firstLine === undefined && text.includes('\n')) firstLine = performance.now();
    if (text.includes(BARE_MARKER))
      return { firstLine: firstLine ?? performance.now(), marker: performance.now() };
    if (exited) {
      throw new CoworkError(
        'unavailable',
        `bare QEMU exited before its first userspace line; console:\n${text.slice(-800)}`,
      );
    }
    await sleep(5);
  }
  throw new CoworkError('timeout', `the bare guest printed nothing from userspace within ${timeoutMs} ms`);
}

/**
 * Boots the bare guest once. `like` describes the sandbox being compared: { image (BootImage),
 * cpus, memoryMiB, shareMode }. Returns milliseconds from launch (virtiofsd first, as the driver
 * does) to the userspace line, and to the kernel's first console line.
 */
export async function bootBare(like, dir, initrd, n) {
  const runDir = join(dir, `bare-${n}`);
  const ws = join(runDir, 'ws');
  const seed = join(runDir, 'seed');
  for (const d of [ws, seed]) mkdirSync(d, { recursive: true });
  const consoleLogPath = join(runDir, 'console.log');
  const virtiofsSocketPath = join(runDir, 'vfs.sock');
  const spec = {
    name: 'cowork-bench-bare',
    cpus: like.cpus,
    memoryMiB: like.memoryMiB,
    image: { ...like.image, initrd },
    workspace: { tag: 'workspace', hostPath: ws, readOnly: false },
    seed: { tag: 'seed', hostPath: seed, readOnly: true },
    shareMode: like.shareMode,
    accel: 'tcg',
    guestPorts: [22],
    // No egress: like the sandbox's, this guest's user network has no outbound rule at all.
    runDir,
  };
  const cmd = buildQemuArgs(spec, {
    hostArch: 'x86_64',
    accel: 'tcg',
    shareMode: like.shareMode,
    hostPorts: { 22: await freeLoopbackPort() },
    qmpSocketPath: join(runDir, 'qmp.sock'),
    consoleLogPath,
    virtiofsSocketPath: like.shareMode === 'virtiofs' ? virtiofsSocketPath : undefined,
    ninePSecurityModel: process.getuid?.() === 0 ? 'passthrough' : 'none',
    tscKhz: await hostTscKhz(),
  });
  let virtiofsd;
  let qemu;
  const t0 = performance.now();
  try {
    if (like.shareMode === 'virtiofs') {
      const binary = await findVirtiofsd();
      if (!binary) throw new CoworkError('unavailable', 'virtiofsd not found (package qemu-system-common)');
      virtiofsd = await spawnVirtiofsd({
        binary,
        socketPath: virtiofsSocketPath,
        sharedDir: ws,
        logPath: join(runDir, 'virtiofsd.log'),
        wrap: (b, a) => [b, a],
      });
    }
    qemu = spawn(cmd.binary, cmd.args, { stdio: ['ignore', 'ignore', 'ignore'] });
    const t = await waitForMarker(consoleLogPath, qemu, 120_000);
    return { ms: t.marker - t0, firstLineMs: t.firstLine - t0, cmdline: cmd.args };
  } finally {
    for (const p of [qemu, virtiofsd]) {
      if (p && p.exitCode === null && p.signalCode === null) {
        const gone = new Promise((r) => p.once('exit', r));
        p.kill('SIGKILL');
        await gone;
      }
    }
    await rm(runDir, { recursive: true, force: true });
  }
}
