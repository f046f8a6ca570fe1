import type { GuestNetwork } from '../driver.js';

/**
 * QEMU's user network (slirp) as this driver uses it: the guest is 10.0.2.15/24 (the address
 * hostfwd delivers to), 10.0.2.2 is the host and 10.0.2.3 its DNS (neither is reachable:
 * `restrict=on`). The only way in is the forwarded SSH port, and there is no way out: the
 * egress proxy appears on the guest's own 127.0.0.1:3128, where the sandbox's SSH session has
 * sshd listen and carries each connection to the host (src/host/ssh/guest-listener.ts; the
 * image's sshd_config permits exactly that listener). These numbers stay inside the QEMU
 * driver; the guest learns them from guest.env.
 */
export const QEMU_GUEST_NETWORK: GuestNetwork = {
  transport: 'tcp-forward',
  guestCidr: '10.0.2.15/24',
  egress: { address: '127.0.0.1', port: 3128, relay: 'ssh' },
};
