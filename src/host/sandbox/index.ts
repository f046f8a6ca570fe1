/**
 * The sandbox folder's face: everything other folders use from here. Importing it stays light —
 * the CLI's client commands (exec, status, stop) load it and must start at once — so the
 * controller (serve.ts and everything it pulls in: policy, VM drivers, SSH, agent) is loaded
 * only when `startController` is called. Types are free: they vanish at run time.
 */
import type { RunningController, StartOptions } from './serve.js';

export type { Controller } from './controller.js';
export { type GuestTrust, guestTrust, HOST_ADDED_CA_DIR, type TrustedCa } from './guest-trust.js';
export { controlSocketPath, locateSandbox } from './locate.js';
export { type LockInfo, processAlive, readLock, SandboxLock } from './lock.js';
export { recentWorkspaces, recordWorkspaceStart } from './recent.js';
export type { Sandbox, SandboxInfo, SandboxOptions } from './sandbox.js';
export type { RunningController, StartOptions } from './serve.js';
export { resolveWorkspace, type WorkspaceRefusalInput, workspaceRefusal } from './workspace.js';

/** Boots the sandbox of a workspace and serves its controller (see serve.ts). */
export async function startController(opts: StartOptions): Promise<RunningController> {
  const serve = await import('./serve.js');
  return serve.startController(opts);
}
