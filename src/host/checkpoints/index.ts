export { type Change, type ChangeSet, changeSet, countsLine, describeChange } from './changes.js';
export { snapshotOptions } from './from-config.js';
export type { FileState, SkippedFile, Snapshot, SnapshotOptions } from './snapshot.js';
export type { CheckpointDiff, CheckpointRecord, UndoResult } from './store.js';
export { CheckpointStore } from './store.js';
export { TaskCheckpoints } from './task-hooks.js';
