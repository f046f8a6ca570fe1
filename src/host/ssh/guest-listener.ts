import type { Duplex } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import type { Client, ClientChannel } from 'ssh2';
import { CoworkError } from '../errors.js';

/**
 * A port the guest's sshd listens on for the host (an SSH remote forward, `tcpip-forward`): each
 * guest connection to it arrives on the host as a `forwarded-tcpip` channel, which is piped to a
 * fresh stream from `connect`. No process per connection: the channel and the host socket are
 * piped in this process.
 *
 * Boundary: the guest chooses nothing on the host. Whatever a channel-open claims, the host
 * only ever calls `connect` (the egress proxy's loopback port); ssh2 already refuses
 * forwarded-tcpip opens for an address/port this client never asked for, and the handler below
 * checks it again, so a forward the host did not bind cannot be used to reach anything.
 */
export interface GuestListenerSpec {
  /** The guest address sshd binds: 127.0.0.1 (the guest's own loopback; sshd_config PermitListen). */
  guestHost: string;
  guestPort: number;
  /** A new host stream per guest connection (e.g. a socket to the egress proxy). */
  connect: () => Duplex;
  /** What listens there, for messages ("the egress proxy"). */
  what: string;
}

/** Binding attempts, 500 ms apart: after a reconnect the old connection's sshd may hold the port a moment. */
const BIND_ATTEMPTS = 6;

/**
 * Asks sshd to listen; resolves once it does. Rejects 'unavailable' when sshd keeps refusing,
 * which on these guests means the port is taken by a process in the guest (or the image's
 * sshd_config does not permit the forward): the caller MUST then treat the connection as
 * unusable, so a squatted port fails closed instead of serving the squatter.
 */
export async function listenInGuest(client: Client, spec: GuestListenerSpec): Promise<void> {
  const { guestHost, guestPort } = spec;
  client.on('tcp connection', (info, accept, reject) => {
    if (info.destIP !== guestHost || info.destPort !== guestPort) return reject();
    let host: Duplex;
    try {
      host = spec.connect();
    } catch {
      return reject();
    }
    pipeBoth(accept(), host);
  });
  let last: unknown;
  for (let attempt = 1; attempt <= BIND_ATTEMPTS; attempt++) {
    if (attempt > 1) await delay(500);
    try {
      await forwardIn(client, guestHost, guestPort);
      return;
    } catch (err) {
      last = err;
    }
  }
  throw new CoworkError(
    'unavailable',
    `the guest's sshd would not listen on ${guestHost}:${guestPort} for ${spec.what} ` +
      `(${last instanceof Error ? last.message : String(last)}): a process in the guest has probably taken that port, ` +
      `so ${spec.what} is not offered there and the guest has no egress — stop the sandbox and start it again`,
    last,
  );
}

function forwardIn(client: Client, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    try {
      client.forwardIn(host, port, (err) => (err ? reject(err) : resolve()));
    } catch (err) {
      reject(err);
    }
  });
}

/**
 * Bytes both ways with half-closes passed on (an HTTP client may end its side and wait for the
 * answer); an error on either side tears both down, and so does the guest's channel closing.
 */
function pipeBoth(channel: ClientChannel, host: Duplex): void {
  const teardown = () => {
    channel.destroy();
    host.destroy();
  };
  channel.on('error', teardown);
  host.on('error', teardown);
  channel.once('close', () => host.destroy());
  channel.pipe(host).pipe(channel);
}
