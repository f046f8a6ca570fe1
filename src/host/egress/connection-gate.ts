import type http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { ClientConnection } from './client-connection.js';
import { endWith } from './dial.js';
import { clientErrorAnswer } from './framing.js';
import { type ProxyRuntime, recordRefusal } from './runtime.js';

/**
 * The proxy's door: every guest connection passes here before any request on it is handled.
 * It counts connections against the cap (503 beyond it), keeps each connection's state, answers
 * parser errors and header timeouts, and refuses a CONNECT or upgrade pipelined behind
 * unanswered requests. It decides nothing about destinations.
 */
export class ConnectionGate {
  /** Client connections that count toward the cap, with their per-connection state. */
  private readonly clients = new Map<Duplex, ClientConnection>();
  /** Connections answered 503 at the cap; nothing they send is handled. */
  private readonly overCap = new WeakSet<Duplex>();
  private capEpisodeRecorded = false;

  constructor(
    private readonly runtime: ProxyRuntime,
    private readonly admit: (req: http.IncomingMessage | undefined) => { taskId: string | null },
    private readonly contain: (socket: Duplex) => (err: unknown) => void,
  ) {}

  get openConnections(): number {
    return this.clients.size;
  }

  /** Counts a new client connection; past the cap it gets a 503 and nothing it sends is handled. */
  accept(socket: net.Socket): void {
    if (this.clients.size >= this.runtime.limits.maxConnections) {
      this.refuseAtCap(socket);
      return;
    }
    this.clients.set(socket, new ClientConnection(socket, this.runtime.dial, this.runtime.limits));
    socket.once('close', () => {
      this.clients.delete(socket);
      if (this.clients.size < this.runtime.limits.maxConnections) this.capEpisodeRecorded = false;
    });
  }

  private refuseAtCap(socket: net.Socket): void {
    this.overCap.add(socket);
    const max = this.runtime.limits.maxConnections;
    const reason = `the connection cap was reached: at most ${max} connections to the egress proxy may be open at once`;
    socket.on('error', () => socket.destroy());
    endWith(socket, 503, `cowork-vm egress proxy: ${reason}. Close idle connections or tunnels and retry.\n`);
    // Let the 503 reach the client before the socket goes; never longer than a header timeout.
    // A hard deadline, not an inactivity timer: a client that keeps sending cannot hold it open.
    const deadline = setTimeout(() => socket.destroy(), this.runtime.limits.headersTimeoutMs);
    socket.once('close', () => clearTimeout(deadline));
    // One event per episode at the cap: a flood must not become a flood of timeline rows.
    if (!this.capEpisodeRecorded) {
      this.capEpisodeRecorded = true;
      const base = {
        type: 'egress.request' as const,
        taskId: this.admit(undefined).taskId,
        kind: 'http' as const,
      };
      recordRefusal(this.runtime, { ...base, method: '' }, { status: 503, stage: 'limit', reason }, 0);
    }
  }

  /**
   * True for a connection already answered 503: what it sends is read and dropped (destroying
   * it here could reset the 503 away before the client read it); its timer closes it.
   */
  refuseIfOverCap(socket: Duplex): boolean {
    if (!this.overCap.has(socket)) return false;
    socket.resume();
    return true;
  }

  connectionOf(socket: Duplex): ClientConnection {
    let conn = this.clients.get(socket);
    if (!conn) {
      // Not counted (already closing); still give it its own pool, never a shared one.
      conn = new ClientConnection(socket, this.runtime.dial, this.runtime.limits);
      this.clients.set(socket, conn);
      socket.once('close', () => this.clients.delete(socket));
    }
    return conn;
  }

  /**
   * A CONNECT or upgrade takes the socket away from the HTTP server. If earlier requests on the
   * same connection are still being answered, the takeover would overtake their responses (and
   * their responses would land in the tunnel): such a pipelined request is refused once the
   * earlier responses are out, and nothing is dialled for it.
   */
  takeOver(req: http.IncomingMessage, socket: Duplex, run: (taskId: string | null) => Promise<void>): void {
    if (this.refuseIfOverCap(socket)) return;
    const { taskId } = this.admit(req);
    const conn = this.connectionOf(socket);
    if (conn.refused) {
      // Behind a refusal: that refusal is the last answer on this connection.
      closeAfterAnswers(conn, socket);
      return;
    }
    if (!conn.busy) {
      run(taskId).catch(this.contain(socket));
      return;
    }
    socket.on('error', () => socket.destroy());
    socket.pause();
    conn.refuseRest();
    const method = req.method ?? '';
    const reason = `${method} pipelined behind an unanswered request on the same connection (the proxy does not pipeline across ${method}; send it on a new connection or after the previous response)`;
    recordRefusal(
      this.runtime,
      { type: 'egress.request', taskId, kind: method === 'CONNECT' ? 'connect' : 'http', method },
      { status: 400, stage: 'invalid', reason },
      0,
    );
    void conn.whenIdle().then(() => endWith(socket, 400, `cowork-vm egress proxy: refused: ${reason}.\n`));
  }

  /** Parser errors, oversized headers and header timeouts: a complete answer, then close. */
  answerClientError(err: Error & { code?: string }, socket: Duplex): void {
    if (this.overCap.has(socket) || !socket.writable) {
      socket.destroy();
      return;
    }
    const conn = this.clients.get(socket);
    if (conn?.refused) {
      // The parser tripped over the rest of a request already refused: that refusal is the answer.
      closeAfterAnswers(conn, socket);
      return;
    }
    const answer = clientErrorAnswer(
      err,
      this.runtime.limits.maxHeaderBytes,
      this.runtime.limits.headersTimeoutMs,
    );
    if (answer.isRequest) {
      const { taskId } = this.admit(undefined);
      recordRefusal(
        this.runtime,
        { type: 'egress.request', taskId, kind: 'http', method: '' },
        { status: answer.status, stage: 'invalid', reason: answer.reason },
        0,
      );
    }
    socket.on('error', () => socket.destroy());
    conn?.refuseRest();
    // Answer after any earlier response on this connection, never in the middle of one.
    const after = conn ? conn.whenIdle() : Promise.resolve();
    void after.then(() =>
      endWith(socket, answer.status, `cowork-vm egress proxy: refused: ${answer.reason}.\n`),
    );
  }
}

/** Closes the socket once every response already started on it is out (never cutting one). */
function closeAfterAnswers(conn: ClientConnection, socket: Duplex): void {
  socket.on('error', () => socket.destroy());
  socket.resume();
  void conn.whenIdle().then(() => {
    socket.end();
    if (socket.writableFinished) socket.destroy();
    else socket.once('finish', () => socket.destroy());
  });
}
