import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../config/index.js';
import { CoworkError } from '../errors.js';
import { hostPaths } from '../paths.js';
import type { Accel, Arch, VmSpec, WarmSnapshotInfo } from '../vm/driver.js';
import { ImageStore } from '../vm/images.js';
import { createDriver, parseAccel } from '../vm/index.js';
import { guestEgress, vmSpec } from './sandbox.js';
import { resolveWorkspace } from './workspace.js';

export interface WarmImageOptions {
  image?: string;
  cpus?: number;
  memoryMiB?: number;
  accel?: Accel;
  /** The workspace whose config gives the VM shape (default: the current directory). */
  workspace?: string;
  configFile?: string;
  env?: NodeJS.ProcessEnv;
  onProgress?: (line: string) => void;
}

/**
 * `cowork-vm image warm`: boots the image to cowork-init's warm point with the VM shape a
 * sandbox of this workspace's config would have, and saves the memory snapshot that `start`
 * restores when `[vm] warm` is on. Nothing of a sandbox exists in it: its shares are empty
 * folders the guest never mounts, its keys come from each sandbox's seed after the restore.
 */
export async function warmImage(opts: WarmImageOptions = {}): Promise<WarmSnapshotInfo> {
  const env = opts.env ?? process.env;
  const workspace = resolveWorkspace(opts.workspace);
  const { config } = loadConfig({ configFile: opts.configFile, workspace, env });
  const paths = hostPaths(env);
  const progress = opts.onProgress ?? (() => {});
  const accel =
    opts.accel ??
    (env.COWORK_VM_ACCEL ? parseAccel(env.COWORK_VM_ACCEL, 'COWORK_VM_ACCEL') : (config.vm.accel as Accel));
  const driver = await createDriver(process.platform, { paths });
  if (!driver.capabilities.warmStart || !driver.snapshot)
    throw new CoworkError('unsupported', `the ${driver.name} driver cannot take warm snapshots`);
  const arch: Arch = process.arch === 'arm64' ? 'aarch64' : 'x86_64';
  const imageName = opts.image ?? config.vm.image;
  const image = await new ImageStore(paths).resolve(imageName, arch);
  const scratch = mkdtempSync(join(tmpdir(), 'cowork-warm-'));
  try {
    const base = {
      workspace: mkdtempSync(join(scratch, 'ws-')),
      stateDir: scratch,
      cpus: opts.cpus ?? config.vm.cpus,
      memoryMiB: opts.memoryMiB ?? config.vm.memoryMiB,
      share: '9p' as const,
      accel,
      warm: true,
      driver,
    };
    const spec: VmSpec = {
      ...vmSpec(
        base,
        image,
        mkdtempSync(join(scratch, 'seed-')),
        guestEgress({ driver, egress: { hostPort: 1 } }),
      ),
      name: `cowork-warm-${imageName}`,
    };
    if (config.cache.enabled && driver.capabilities.cacheDisk) {
      // The sandbox's cache disk is attached at restore in the same place: the snapshot has a
      // placeholder of the configured size (sparse, never mounted: the guest reads it only after go).
      const path = join(scratch, 'cache.img');
      const fd = openSync(path, 'wx', 0o600);
      ftruncateSync(fd, config.cache.sizeGiB * 1024 ** 3);
      closeSync(fd);
      spec.cacheDisk = { path };
    }
    progress(`warm snapshot of "${imageName}" (${base.cpus} cpu, ${base.memoryMiB} MiB)`);
    return await driver.snapshot(spec, { onProgress: (l) => progress(`guest: ${l}`) });
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
