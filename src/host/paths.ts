import { createHash } from 'node:crypto';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Where cowork-vm keeps things on the host. Every location can be overridden by an
 * environment variable so tests (and unusual setups) never touch a user's real dirs.
 *  - cache: guest images (rebuildable)         COWORK_VM_CACHE_DIR, else XDG_CACHE_HOME/cowork-vm
 *  - state: locks, sockets, keys, timelines    COWORK_VM_STATE_DIR, else XDG_STATE_HOME/cowork-vm
 *  - config: config.toml                       COWORK_VM_CONFIG_DIR, else XDG_CONFIG_HOME/cowork-vm
 */
export interface HostPaths {
  cacheDir: string;
  stateDir: string;
  configDir: string;
}

export function hostPaths(env: NodeJS.ProcessEnv = process.env): HostPaths {
  const home = env.HOME || homedir();
  const mac = process.platform === 'darwin';
  const cacheBase = env.XDG_CACHE_HOME || (mac ? join(home, 'Library', 'Caches') : join(home, '.cache'));
  const stateBase =
    env.XDG_STATE_HOME ||
    (mac ? join(home, 'Library', 'Application Support') : join(home, '.local', 'state'));
  const configBase =
    env.XDG_CONFIG_HOME || (mac ? join(home, 'Library', 'Application Support') : join(home, '.config'));
  return {
    cacheDir: env.COWORK_VM_CACHE_DIR || join(cacheBase, 'cowork-vm'),
    stateDir: env.COWORK_VM_STATE_DIR || join(stateBase, 'cowork-vm'),
    configDir: env.COWORK_VM_CONFIG_DIR || join(configBase, 'cowork-vm'),
  };
}

/** Short stable id for a workspace (its real path), used to name its state folder. */
export function workspaceId(realWorkspace: string): string {
  return createHash('sha256').update(realWorkspace).digest('hex').slice(0, 16);
}

/** The per-sandbox state folder: lock, control socket, keys, seed share, console log, timeline. */
export function sandboxStateDir(paths: HostPaths, realWorkspace: string): string {
  return join(paths.stateDir, 'sandboxes', workspaceId(realWorkspace));
}
