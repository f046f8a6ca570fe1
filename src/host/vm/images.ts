import type { HostPaths } from '../paths.js';
import { type ExportOptions, type ExportResult, exportImage } from './image-archive.js';
import { buildImage, type ImageBuildOptions, type ImageBuildResult } from './image-build.js';
import { ImageCache, type ImageCacheOptions } from './image-cache.js';
import { type ImportOptions, type ImportResult, importImage } from './image-import.js';

/**
 * The image store the CLI, doctor and sandbox use: the cache (image-cache.ts: lookup, list,
 * verify, remove) plus `build` (image-build.ts), with the build's environment, and moving a
 * built image between hosts as one archive (image-archive.ts, image-import.ts).
 */

export type { ArchiveProgress, ExportResult } from './image-archive.js';

export type { ImageBuildOptions, ImageBuildResult } from './image-build.js';
export type { ImageInfo, ResolvedImage } from './image-cache.js';
export type { ImportResult } from './image-import.js';

export interface ImageStoreOptions extends ImageCacheOptions {
  /** Extra environment for the build (e.g. COWORK_VM_MIRROR). */
  env?: NodeJS.ProcessEnv;
}

export class ImageStore extends ImageCache {
  private readonly env: NodeJS.ProcessEnv;

  constructor(paths: HostPaths, opts: ImageStoreOptions = {}) {
    super(paths, opts);
    this.env = { ...process.env, ...opts.env };
  }

  build(name: string, opts: ImageBuildOptions = {}): Promise<ImageBuildResult> {
    return buildImage(this, name, { ...opts, env: this.env });
  }

  /** Writes the current (name, arch) image as one archive (manifest first, then its files). */
  exportArchive(name: string, opts: ExportOptions = {}): Promise<ExportResult> {
    return exportImage(this, name, opts);
  }

  /** Verifies an archive from exportArchive against its manifest and this recipe, then installs it. */
  importArchive(file: string, opts: ImportOptions = {}): Promise<ImportResult> {
    return importImage(this, file, opts);
  }
}
