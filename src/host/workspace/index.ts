export { foldsCase, protectedPathsFor } from './from-config.js';
export type { MountLine, ProtectedChange, WorkspaceGuardOptions } from './guard.js';
export { describeProtectedChange, WorkspaceGuard } from './guard.js';
export type { ProtectOptions } from './protected.js';
export { DEFAULT_PROTECT, GIT_PROTECTED_NAMES, invalidProtectPatterns, ProtectedPaths } from './protected.js';
export type { ProtectedEntry, ScanResult } from './scan.js';
export { scanProtected } from './scan.js';
