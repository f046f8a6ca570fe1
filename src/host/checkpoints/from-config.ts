import type { CheckpointsConfig } from '../config/schema.js';
import type { SnapshotOptions } from './snapshot.js';

/** What the snapshotter takes from `[checkpoints]`. */
export function snapshotOptions(c: CheckpointsConfig): SnapshotOptions {
  return { exclude: c.exclude, maxFileBytes: c.maxFileSizeMB * 1024 * 1024 };
}
