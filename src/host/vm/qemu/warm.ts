import { createHash, randomBytes } from 'node:crypto';
import { readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoworkError } from '../../errors.js';
import type { GuestNetwork, VmSpec } from '../driver.js';
import { buildQemuArgs, type QemuHostConfig } from './args.js';
import type { QmpClient } from './qmp.js';

/**
 * Warm start (docs/guest-contract.md "Warm point"): a memory snapshot of a guest that booted to
 * cowork-init's warm point — before any share is mounted and before anything of a sandbox is
 * known — restored instead of a boot. microvm has no hotplug, so the snapshotted VM already has
 * every device; only host-side backing changes at restore (the 9p fsdev paths, hostfwd ports,
 * the console file), and none of that is migrated state. The snapshot's key is the QEMU command
 * line with exactly those host-side values replaced by fixed ones, plus the QEMU version and the
 * image files' identity: anything else that differs (memory, cpus, NIC rules, accelerator, the
 * kernel command line, the image, the cache disk's size) is another key, so a snapshot never meets a VM it was not
 * taken from.
 */

/** The guest port cowork-init's warm point listens on for the host's "go" line (hostfwd). */
export const WARM_GO_PORT = 1022;
export const WARM_POINT_RE = /COWORK-WARM-POINT/;
const FORMAT = 1;

/** Why this spec cannot start warm (it then boots cold with that reason), or undefined. */
export function warmRefusal(spec: VmSpec): string | undefined {
  if (spec.deviceProfile === 'vz')
    return 'the vz device profile shares over virtiofs, which cannot be migrated';
  if (spec.shareMode === 'virtiofs')
    return 'vm.share is virtiofs, and QEMU 7.2 cannot migrate a vhost-user-fs device (set vm.share = "9p" or "auto")';
  return undefined;
}

/** The spec a warm-capable guest boots with: 9p shares, the go port, the warm point words. */
export function warmShapedSpec(spec: VmSpec, network: GuestNetwork): VmSpec {
  if (!network.guestCidr) throw new CoworkError('unsupported', 'warm start needs a guest NIC');
  return {
    ...spec,
    shareMode: '9p',
    guestPorts: [...spec.guestPorts.filter((p) => p !== WARM_GO_PORT), WARM_GO_PORT],
    kernelArgs: [
      ...(spec.kernelArgs ?? []),
      `cowork.warm=${WARM_GO_PORT}`,
      `cowork.warm.addr=${network.guestCidr}`,
    ],
  };
}

/** The snapshot's key: the command line with its host-side values fixed, QEMU's version, the image files. */
export async function warmKey(spec: VmSpec, host: QemuHostConfig, qemuVersion: string): Promise<string> {
  const canonical = buildQemuArgs(
    {
      ...spec,
      name: 'cowork',
      workspace: { ...spec.workspace, hostPath: '/warm/workspace' },
      seed: { ...spec.seed, hostPath: '/warm/seed' },
      runDir: '/warm',
      cacheDisk: spec.cacheDisk && { path: '/warm/cache' },
    },
    {
      ...host,
      incoming: false,
      hostPorts: Object.fromEntries(spec.guestPorts.map((p, i) => [p, 1000 + i])),
      qmpSocketPath: '/warm/qmp',
      consoleLogPath: '/warm/console',
    },
  );
  const files = await Promise.all(
    [spec.image.kernel, spec.image.initrd, spec.image.rootfs].map(async (p) => {
      const s = await stat(p);
      return [p, s.size, Math.round(s.mtimeMs)];
    }),
  );
  // The cache disk's size is guest-visible (virtio-blk capacity): a snapshot is for one size only.
  const cacheBytes = spec.cacheDisk ? (await stat(spec.cacheDisk.path)).size : null;
  const material = JSON.stringify({ format: FORMAT, qemuVersion, args: canonical.args, files, cacheBytes });
  return createHash('sha256').update(material).digest('hex').slice(0, 24);
}

export function snapshotFile(dir: string, key: string): string {
  return join(dir, `${key}.vmstate`);
}

/** The snapshot for key, or why there is none (the reason goes on the start's progress). */
export async function findSnapshot(dir: string, key: string): Promise<{ file: string } | { reason: string }> {
  const file = snapshotFile(dir, key);
  const s = await stat(file).catch(() => undefined);
  if (s?.isFile() && s.size > 0) return { file };
  const others = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.vmstate'));
  return {
    reason: others.length
      ? `the ${others.length} warm snapshot(s) of this image were taken for another VM shape or QEMU version (stale) — run: cowork-vm image warm`
      : 'no warm snapshot for this image and VM shape — run: cowork-vm image warm',
  };
}

function shellQuote(p: string): string {
  return `'${p.replaceAll("'", `'\\''`)}'`;
}

interface MigrateStatus {
  status?: string;
  'error-desc'?: string;
}

async function waitMigration(qmp: QmpClient, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = await qmp.execute<MigrateStatus>('query-migrate');
    if (m.status === 'completed') return;
    if (m.status === 'failed' || m.status === 'cancelled')
      throw new CoworkError(
        'unavailable',
        `${what} ${m.status}${m['error-desc'] ? `: ${m['error-desc']}` : ''}`,
      );
    if (Date.now() > deadline)
      throw new CoworkError('timeout', `${what} did not finish within ${timeoutMs} ms`);
    await sleep(25);
  }
}

/**
 * Writes the stopped guest's state to `file` atomically (a temporary file, then rename). QEMU 7.2
 * has no file: migration URI, so the stream goes through `exec:cat`.
 */
export async function saveSnapshot(qmp: QmpClient, file: string, timeoutMs: number): Promise<number> {
  const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    await qmp.execute('stop');
    await qmp.execute('migrate-set-parameters', { 'max-bandwidth': 8 * 1024 ** 3 });
    await qmp.execute('migrate', { uri: `exec:cat > ${shellQuote(tmp)}` });
    await waitMigration(qmp, 'saving the warm snapshot', timeoutMs);
    const { size } = await stat(tmp);
    await rename(tmp, file);
    return size;
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Loads `file` into a QEMU started with `-incoming defer` and lets the guest run. */
export async function loadSnapshot(qmp: QmpClient, file: string, timeoutMs: number): Promise<void> {
  await qmp.execute('migrate-incoming', { uri: `exec:cat ${shellQuote(file)}` });
  await waitMigration(qmp, 'loading the warm snapshot', timeoutMs);
  const st = await qmp.execute<{ running?: boolean }>('query-status');
  if (!st.running) await qmp.execute('cont');
}

/**
 * The go line to the restored guest's warm point: the host's clock and 64 fresh random bytes,
 * answered by "ok". The listener takes ONE connection: if anything else took it, the guest got a
 * go that was not ours and our connection gets no "ok" — the start fails (the caller stops the VM).
 */
export async function sendGo(hostPort: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    const line = `go ${Math.floor(Date.now() / 1000)} ${randomBytes(64).toString('hex')}\n`;
    const answer = await exchange(hostPort, line, Math.max(500, deadline - Date.now())).catch(
      (err: Error) => `error: ${err.message}`,
    );
    if (answer.startsWith('ok')) return;
    last = answer || 'the connection closed without an answer';
    await sleep(50);
  }
  throw new CoworkError(
    'timeout',
    `the restored guest did not take the go line within ${timeoutMs} ms (${last})`,
  );
}

function exchange(port: number, line: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let got = '';
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(got);
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(line));
    sock.on('data', (d: string) => {
      got += d;
      if (got.includes('\n')) sock.end();
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Writes the snapshot's description next to it (for `image ls`-style listings and humans). */
export async function writeSnapshotMeta(file: string, meta: Record<string, unknown>): Promise<void> {
  const tmp = `${file}.json.tmp`;
  await writeFile(tmp, `${JSON.stringify(meta, null, 2)}\n`);
  await rename(tmp, file.replace(/\.vmstate$/, '.json'));
}
