export { DEFAULT_PROTECT, GIT_PROTECTED_NAMES, invalidProtectPatterns, ProtectedPaths } from './protected.js';
export type { ProtectOptions } from './protected.js';
