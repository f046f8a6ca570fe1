export { shellQuote, wrapCommand } from './command.js';
export {
  authorizedKeysLine,
  ensureSandboxKeys,
  fingerprintOf,
  KEY_FILES,
  publicKeyLine,
  type SandboxKeys,
  sameKey,
} from './keys.js';
export { DEFAULT_MAX_OUTPUT_BYTES, SshGuestSession, type SshGuestSessionOptions } from './session.js';
export { DEFAULT_READ_MAX_BYTES } from './sftp.js';
export type { DirEntry, ExecOptions, ExecResult, FileStat, GuestSession } from './types.js';
