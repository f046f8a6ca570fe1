import type { HostPaths } from '../paths.js';
import type { VmDriver } from './driver.js';
import { QemuDriver, type QemuDriverOptions } from './qemu/index.js';

export { ConsoleWatcher, consoleTail } from './console-watch.js';
export type * from './driver.js';
export {
  type ImageBuildOptions,
  type ImageBuildResult,
  type ImageInfo,
  ImageStore,
  type ImageStoreOptions,
  type ResolvedImage,
} from './images.js';
export { cleanupStrays, parseAccel, QemuDriver, type QemuDriverOptions, QmpClient } from './qemu/index.js';

export interface CreateDriverOptions {
  paths: HostPaths;
  /** Force a driver regardless of platform (tests, `--driver qemu` on macOS). */
  driver?: 'qemu' | 'vz';
  qemu?: Omit<QemuDriverOptions, 'stateDir'>;
}

/**
 * The driver for this host: Virtualization.framework on macOS, QEMU elsewhere. The VZ module is
 * imported lazily so Linux never loads the macOS addon loader.
 */
export async function createDriver(
  platform: NodeJS.Platform = process.platform,
  opts: CreateDriverOptions,
): Promise<VmDriver> {
  const which = opts.driver ?? (platform === 'darwin' ? 'vz' : 'qemu');
  if (which === 'vz') {
    const { VzDriver } = await import('./vz/index.js');
    return new VzDriver();
  }
  return new QemuDriver({ ...opts.qemu, stateDir: opts.paths.stateDir });
}
