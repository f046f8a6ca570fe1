import type { Origin } from '../api/controller.js';
import type { Role } from '../api/roles.js';
import type { ControlStore, DeviceRecord } from '../control/store.js';
import { CoworkError } from '../errors.js';
import type { SessionBinding } from './sessions.js';

/**
 * Who a dashboard login is for, from the origin the transport built (never from the params):
 *
 * - the owner (the local socket, `cli`; the foreground terminal): admin, or the lower role it
 *   asks for. Either way the session belongs to a device record "dashboard (<role>)" that the
 *   host registers once per role, so `devices.revoke` can end it like any other device's;
 * - a paired control device (`device:<id>`) or a dashboard session (`dashboard:<id>`): that
 *   device with its current role — it can never log in as more than it is;
 * - anyone else (a messaging channel user, a task): refused, the dashboard is on 127.0.0.1 of
 *   this host and a link to it means nothing elsewhere.
 */

/** The channel the owner's dashboard devices are registered under (they have no key). */
export const DASHBOARD_CHANNEL = 'dashboard';

const OWNER_ORIGINS = new Set(['cli', 'terminal']);

export function loginBinding(origin: Origin, role: Role | undefined, store: ControlStore): SessionBinding {
  if (OWNER_ORIGINS.has(origin.id)) {
    const r = role ?? 'admin';
    const device = store.ensureHostDevice({
      channel: DASHBOARD_CHANNEL,
      channelUser: `owner:${r}`,
      name: `dashboard (${r})`,
      role: r,
    });
    return bindingOf(device);
  }
  if (role !== undefined) {
    // The contract lets only the owner send `role`; a transport that passes it on is a bug.
    throw new CoworkError('denied', 'only the owner may choose the role of a dashboard login');
  }
  const m = /^(?:device|dashboard):([^:]+)$/.exec(origin.id);
  if (!m) {
    throw new CoworkError(
      'unsupported',
      `dashboard.login is for the owner's terminal and paired devices on this host, not for '${origin.id}'`,
    );
  }
  const device = store.getDevice(m[1]!);
  if (!device || device.revokedAt !== undefined)
    throw new CoworkError('denied', 'this device is revoked or unknown; pair it again');
  return bindingOf(device);
}

function bindingOf(d: DeviceRecord): SessionBinding {
  return { deviceId: d.id, deviceName: d.name, role: d.role };
}
