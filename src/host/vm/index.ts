import type { HostPaths } from '../paths.js';
import type { VmDriver } from './driver.js';
import { QemuDriver, type QemuDriverOptions } from './qemu/index.js';

export { ConsoleWatcher, consoleTail } from './console-watch.js';
export type * from './driver.js';
export { describeVmExit } from './exit-reason.js';
export { buildImage, type ImageBuildOptions, type ImageBuildResult } from './image-build.js';
export { ImageCache, type ImageCacheOptions, type ImageInfo, type ResolvedImage } from './image-cache.js';
export { ImageStore, type ImageStoreOptions } from './images.js';
export {
  cleanupStrays,
  parseAccel,
  QEMU_GUEST_NETWORK,
  QemuDriver,
  type QemuDriverOptions,
  QmpClient,
} from './qemu/index.js';

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
