import { type HostPaths, hostPaths } from '../paths.js';
import type { Role } from './protocol.js';
import { ControlStore, type DeviceRecord, defaultControlStorePath } from './store.js';

/**
 * The host functions behind `cowork-vm pair` and `cowork-vm devices`. They open the device
 * store file directly (the controller need not be running); a running controller notices a
 * revoke within its sweep interval (about a second) and closes that device's sessions.
 */
function withStore<T>(paths: HostPaths, fn: (store: ControlStore) => T): T {
  const store = new ControlStore({ file: defaultControlStorePath(paths) });
  try {
    return fn(store);
  } finally {
    store.close();
  }
}

export function createPairingCode(
  opts: { role: Role },
  paths: HostPaths = hostPaths(),
): { code: string; expiresAt: number } {
  return withStore(paths, (s) => s.createPairingCode(opts));
}

export function listDevices(
  opts: { includeRevoked?: boolean } = {},
  paths: HostPaths = hostPaths(),
): DeviceRecord[] {
  return withStore(paths, (s) => s.listDevices(opts));
}

export function revokeDevice(id: string, paths: HostPaths = hostPaths()): DeviceRecord {
  return withStore(paths, (s) => s.revokeDevice(id, 'cli'));
}
