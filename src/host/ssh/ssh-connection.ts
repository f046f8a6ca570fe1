import { createHash, timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { Client, type ClientChannel, type SFTPWrapper } from 'ssh2';
import { CoworkError } from '../errors.js';
import { type GuestListenerSpec, listenInGuest } from './guest-listener.js';
import { fingerprintOf, publicKeyBlob } from './keys.js';

export interface ConnectSshOptions {
  connect: () => Promise<Duplex>;
  username: string;
  privateKey: string | Buffer;
  hostKey: string | Buffer;
  readyTimeoutMs: number;
  keepaliveIntervalMs: number;
  /** Called once when the established connection ends for any reason other than end(). */
  onClose: (conn: SshConnection, err: CoworkError) => void;
}

/** Channel-open retries (10, 20, 40 … 200 ms apart: about 2 s in all). */
const OPEN_ATTEMPTS = 15;

const LOST =
  'connection to the guest lost while the command ran; it may or may not have finished — check its effects before running it again';

/** One authenticated ssh2 connection. Knows nothing about retries; the session owns that. */
export class SshConnection {
  private readonly lostHandlers = new Set<(err: CoworkError) => void>();
  private sftpChannel: Promise<SFTPWrapper> | undefined;
  private lastError: Error | undefined;
  private ending = false;
  alive = true;

  constructor(
    private readonly client: Client,
    onClose: ConnectSshOptions['onClose'],
  ) {
    client.on('error', (err: Error) => {
      this.lastError = err;
    });
    client.once('close', () => {
      this.alive = false;
      const err = new CoworkError('unavailable', LOST, this.lastError);
      for (const fail of [...this.lostHandlers]) fail(err);
      this.lostHandlers.clear();
      if (!this.ending) onClose(this, err);
    });
  }

  /** Runs `fail` if the connection drops; returns the function that unregisters it. */
  onLost(fail: (err: CoworkError) => void): () => void {
    if (!this.alive) {
      queueMicrotask(() => fail(new CoworkError('unavailable', LOST, this.lastError)));
      return () => undefined;
    }
    this.lostHandlers.add(fail);
    return () => this.lostHandlers.delete(fail);
  }

  /**
   * Opens an exec channel. `setup` runs synchronously in ssh2's callback, before any later packet
   * can emit events. A refused channel *open* (no exec request was sent, so nothing ran) is
   * retried briefly: sshd frees a finished session only in its next main-loop pass, so an open
   * right after another channel closed can hit MaxSessions for a moment.
   */
  async exec(line: string, setup: (ch: ClientChannel) => void): Promise<ClientChannel> {
    let wait = 10;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.execOnce(line, setup);
      } catch (err) {
        const refusedOpen = (err as { reason?: unknown }).reason !== undefined;
        if (!refusedOpen || !this.alive || attempt >= OPEN_ATTEMPTS) {
          const hint = refusedOpen
            ? " (sshd refused a new session: is its MaxSessions lower than the session's maxSessions?)"
            : '';
          throw channelError(err, hint);
        }
        await delay(wait);
        wait = Math.min(wait * 2, 200);
      }
    }
  }

  private execOnce(line: string, setup: (ch: ClientChannel) => void): Promise<ClientChannel> {
    return new Promise((resolve, reject) => {
      try {
        this.client.exec(line, (err, ch) => {
          if (err) return reject(err);
          setup(ch);
          resolve(ch);
        });
      } catch (err) {
        reject(err);
      }
    });
  }

  /** The connection's one SFTP channel, opened on first use (refused opens retried like exec). */
  sftp(): Promise<SFTPWrapper> {
    if (!this.sftpChannel) {
      const opening = this.openSftp();
      this.sftpChannel = opening;
      opening.then(
        (sftp) =>
          sftp.once('close', () => {
            if (this.sftpChannel === opening) this.sftpChannel = undefined;
          }),
        () => {
          if (this.sftpChannel === opening) this.sftpChannel = undefined;
        },
      );
    }
    return this.sftpChannel;
  }

  private async openSftp(): Promise<SFTPWrapper> {
    let wait = 10;
    for (let attempt = 1; ; attempt++) {
      try {
        return await new Promise<SFTPWrapper>((resolve, reject) => {
          try {
            this.client.sftp((err, sftp) => (err ? reject(err) : resolve(sftp)));
          } catch (err) {
            reject(err);
          }
        });
      } catch (err) {
        const refusedOpen = (err as { reason?: unknown }).reason !== undefined;
        if (!refusedOpen || !this.alive || attempt >= OPEN_ATTEMPTS) {
          throw CoworkError.from(err, 'unavailable', 'cannot open the SFTP channel to the guest');
        }
        await delay(wait);
        wait = Math.min(wait * 2, 200);
      }
    }
  }

  forward(host: string, port: number): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const fail = (err: unknown) =>
        reject(
          CoworkError.from(
            err,
            'unavailable',
            `cannot open a stream to ${host}:${port} in the guest (is something listening there?)`,
          ),
        );
      try {
        this.client.forwardOut('127.0.0.1', 0, host, port, (err, ch) => (err ? fail(err) : resolve(ch)));
      } catch (err) {
        fail(err);
      }
    });
  }

  /** Has the guest's sshd listen for the host (see guest-listener.ts); resolves once it does. */
  listenInGuest(spec: GuestListenerSpec): Promise<void> {
    return listenInGuest(this.client, spec);
  }

  /** Rejects every call in flight with `reason` (their channels stay open until end()). */
  abandonInFlight(reason: CoworkError): void {
    for (const fail of [...this.lostHandlers]) fail(reason);
    this.lostHandlers.clear();
  }

  /** Ends the connection; channels in flight reject with `reason`. */
  async end(reason: CoworkError): Promise<void> {
    if (!this.alive) return;
    this.ending = true;
    this.abandonInFlight(reason);
    const closed = new Promise<void>((resolve) => this.client.once('close', () => resolve()));
    this.client.end();
    const timer = setTimeout(() => this.client.destroy(), 2000);
    await closed;
    clearTimeout(timer);
  }
}

function channelError(err: unknown, hint = ''): CoworkError {
  const msg = err instanceof Error ? err.message : String(err);
  return new CoworkError('unavailable', `could not open a channel to the guest: ${msg}${hint}`, err);
}

/**
 * Opens a stream with `opts.connect`, runs the SSH handshake pinned to `opts.hostKey` (only
 * ssh-ed25519 host keys are negotiated; the raw key must match byte for byte) and
 * authenticates with the client key. Mismatch → 'denied', and the connection is dropped before
 * authentication, so nothing is sent to an impostor.
 */
export async function connectSsh(opts: ConnectSshOptions): Promise<SshConnection> {
  const expected = publicKeyBlob(opts.hostKey);
  let sock: Duplex;
  try {
    sock = await opts.connect();
  } catch (err) {
    throw CoworkError.from(err, 'unavailable', "cannot open a stream to the guest's SSH port");
  }
  // Many small channels share this one stream (exec round trips, forwarded egress connections):
  // Nagle would hold a small packet back until the previous one is acknowledged.
  (sock as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  const client = new Client();
  return new Promise<SshConnection>((resolve, reject) => {
    let presented: Buffer | undefined;
    let settled = false;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      client.off('close', onClose);
      client.on('error', () => undefined);
      client.destroy();
      sock.destroy();
      reject(mapHandshakeError(err, presented, expected, opts.hostKey));
    };
    const onClose = () => fail(new Error('the connection closed during the SSH handshake'));
    client.on('error', fail);
    client.once('close', onClose);
    client.once('ready', () => {
      if (settled) return;
      settled = true;
      client.off('error', fail);
      client.off('close', onClose);
      resolve(new SshConnection(client, opts.onClose));
    });
    try {
      client.connect({
        sock,
        username: opts.username,
        privateKey: opts.privateKey,
        readyTimeout: opts.readyTimeoutMs,
        keepaliveInterval: opts.keepaliveIntervalMs,
        keepaliveCountMax: 3,
        algorithms: { serverHostKey: ['ssh-ed25519'] },
        hostVerifier: (key: Buffer) => {
          presented = Buffer.from(key);
          return key.length === expected.length && timingSafeEqual(key, expected);
        },
      });
    } catch (err) {
      fail(err);
    }
  });
}

function mapHandshakeError(
  err: unknown,
  presented: Buffer | undefined,
  expected: Buffer,
  hostKey: string | Buffer,
): CoworkError {
  if (err instanceof CoworkError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  if (presented && !(presented.length === expected.length && timingSafeEqual(presented, expected))) {
    const got = `SHA256:${createHash('sha256').update(presented).digest('base64').replace(/=+$/, '')}`;
    return new CoworkError(
      'denied',
      `guest host key mismatch — the SSH server presented ${got} but this sandbox pins ${fingerprintOf(hostKey)}; ` +
        "the connection was refused. Something other than this sandbox's guest may be answering on its SSH port; stop the sandbox and start it again",
      err,
    );
  }
  const level = (err as { level?: string } | undefined)?.level;
  if (level === 'client-authentication') {
    return new CoworkError(
      'denied',
      `the guest refused the sandbox's client key (${msg}); restart the sandbox so the guest gets the current key`,
      err,
    );
  }
  if (level === 'client-timeout') {
    return new CoworkError(
      'timeout',
      `the SSH handshake with the guest did not finish in time (${msg})`,
      err,
    );
  }
  return new CoworkError('unavailable', `SSH connection to the guest failed: ${msg}`, err);
}
