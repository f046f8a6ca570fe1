import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { CoworkError } from '../errors.js';

/**
 * Guest ports made reachable on the host's 127.0.0.1: each forward is a loopback listener whose
 * every connection becomes one direct-tcpip channel on the sandbox's SSH session to the guest's
 * 127.0.0.1:<port> (the guest's sshd allows local forwarding only). Nothing listens on another
 * address, no guest NIC port is opened, and every forward closes with the sandbox.
 */

export interface ForwardInfo {
  guestPort: number;
  hostPort: number;
  /** Where to reach it on the host. */
  url: string;
  openedAt: string;
  connections: number;
}

/** A byte stream to a guest port, e.g. `(port) => session.forward(port)`. */
export type GuestDialer = (guestPort: number) => Promise<Duplex>;

interface Forward {
  info: ForwardInfo;
  server: Server;
  sockets: Set<Socket>;
}

export const MAX_FORWARDS = 32;

export function checkPort(what: string, port: number, min: number): void {
  if (!Number.isInteger(port) || port < min || port > 65535) {
    throw new CoworkError('invalidArgument', `${what} must be a whole number ${min}–65535, got ${port}`);
  }
}

export class PortForwards {
  private readonly forwards = new Map<number, Forward>();
  private closed = false;

  constructor(
    private readonly dial: GuestDialer,
    private readonly onConnectionError?: (guestPort: number, err: Error) => void,
  ) {}

  /** Listens on 127.0.0.1:hostPort (0 = a free port) and forwards to the guest's port. */
  async open(guestPort: number, hostPort: number): Promise<ForwardInfo> {
    if (this.closed) throw new CoworkError('unavailable', 'the sandbox is stopping; no new forwards');
    checkPort('guest port', guestPort, 1);
    checkPort('host port', hostPort, 0);
    const existing = [...this.forwards.values()].find((f) => f.info.guestPort === guestPort);
    if (existing && (hostPort === 0 || hostPort === existing.info.hostPort)) return { ...existing.info };
    if (this.forwards.size >= MAX_FORWARDS) {
      throw new CoworkError(
        'limitExceeded',
        `${MAX_FORWARDS} forwards are open; close one with \`cowork-vm forward --close HOST_PORT\``,
      );
    }
    const sockets = new Set<Socket>();
    // Half-open: a client that sends its request and shuts its side still gets the answer.
    const server = createServer({ allowHalfOpen: true }, (socket) => this.relay(guestPort, socket, sockets));
    const port = await listen(server, hostPort);
    const info: ForwardInfo = {
      guestPort,
      hostPort: port,
      url: `http://127.0.0.1:${port}`,
      openedAt: new Date().toISOString(),
      connections: 0,
    };
    this.forwards.set(port, { info, server, sockets });
    return { ...info };
  }

  list(): ForwardInfo[] {
    return [...this.forwards.values()].map((f) => ({ ...f.info }));
  }

  /** Stops listening and cuts the forward's connections. */
  async close(hostPort: number): Promise<ForwardInfo> {
    const f = this.forwards.get(hostPort);
    if (!f) {
      throw new CoworkError(
        'notFound',
        `no forward on host port ${hostPort} — \`cowork-vm status\` lists the open ones`,
      );
    }
    this.forwards.delete(hostPort);
    for (const s of f.sockets) s.destroy();
    await new Promise<void>((r) => f.server.close(() => r()));
    return { ...f.info };
  }

  async closeAll(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.forwards.keys()].map((p) => this.close(p).catch(() => undefined)));
  }

  private relay(guestPort: number, socket: Socket, sockets: Set<Socket>): void {
    sockets.add(socket);
    const f = [...this.forwards.values()].find((x) => x.sockets === sockets);
    if (f) f.info.connections++;
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.pause();
    this.dial(guestPort).then(
      (channel) => {
        if (socket.destroyed) {
          channel.destroy();
          return;
        }
        channel.on('error', () => socket.destroy());
        socket.on('close', () => channel.destroy());
        channel.on('close', () => socket.destroy());
        socket.pipe(channel);
        channel.pipe(socket);
        socket.resume();
      },
      (err: Error) => {
        this.onConnectionError?.(guestPort, err);
        socket.destroy();
      },
    );
  }
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'EADDRINUSE'
          ? new CoworkError(
              'invalidState',
              `host port 127.0.0.1:${port} is in use; pick another (GUEST_PORT:HOST_PORT, 0 = any free port)`,
            )
          : CoworkError.from(err, 'unavailable', `cannot listen on 127.0.0.1:${port}`),
      );
    });
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => {
      const addr = server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : port);
    });
  });
}
