import type { GuestNetwork } from '../driver.js';

/**
 * QEMU's user network (slirp) as this driver uses it: the guest is 10.0.2.15/24 (the address
 * hostfwd delivers to), 10.0.2.2 is the host and 10.0.2.3 its DNS (neither is reachable:
 * `restrict=on`), and the egress proxy appears at 10.0.2.100:3128 through a per-connection
 * guestfwd. These numbers stay inside the QEMU driver; the guest learns them from guest.env.
 */
export const QEMU_GUEST_NETWORK: GuestNetwork = {
  transport: 'tcp-forward',
  guestCidr: '10.0.2.15/24',
  egress: { address: '10.0.2.100', port: 3128 },
};
