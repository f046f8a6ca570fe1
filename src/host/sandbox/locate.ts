import { join } from 'node:path';
import { hostPaths, sandboxStateDir } from '../paths.js';
import { resolveWorkspace } from './workspace.js';

/*
 * Where a workspace's sandbox lives, without loading the controller: the CLI's client commands
 * (exec, status, stop…) need only these paths, and the CLI must start at once.
 */

export function controlSocketPath(stateDir: string): string {
  return join(stateDir, 'control.sock');
}

/** Locations of a workspace's sandbox, for commands that talk to a running controller. */
export function locateSandbox(workspace?: string, env: NodeJS.ProcessEnv = process.env) {
  const ws = resolveWorkspace(workspace);
  const stateDir = sandboxStateDir(hostPaths(env), ws);
  return { workspace: ws, stateDir, socketPath: controlSocketPath(stateDir) };
}
