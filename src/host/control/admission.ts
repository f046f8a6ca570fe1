import type { Socket } from 'node:net';

/**
 * Connections that have not authenticated yet, from the TCP accept on: they are capped per
 * address and in total (apart from authenticated sessions, which only paired devices can open),
 * and each must authenticate within the handshake time or it is cut off.
 *
 * A full pool never refuses the newcomer: it evicts the oldest unauthenticated connection of
 * the busiest address instead. Idle sockets, however many and however often renewed, therefore
 * cannot keep the owner out — the owner's connection is the newest and answers its challenge in
 * a round trip, long before it could become the oldest.
 */
export interface AdmissionLimits {
  /** Unauthenticated connections from one address (IPv6: one /64). */
  perAddress: number;
  /** Unauthenticated connections in total. */
  total: number;
  /** From the TCP accept to a successful authentication. */
  handshakeTimeoutMs: number;
}

interface Entry {
  socket: Socket;
  key: string;
  seq: number;
  timer: NodeJS.Timeout;
  /** Set once the WebSocket session exists: closes it with a frame the client can read. */
  end?: (why: 'timeout' | 'evicted') => void;
}

/** Identifies one TCP connection whichever socket object (raw or TLS) carries it. */
export function connectionId(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}|${socket.localAddress}|${socket.localPort}`;
}

export class AdmissionPool {
  private readonly entries = new Map<string, Entry>();
  private readonly perKey = new Map<string, number>();
  private seq = 0;
  evicted = 0;

  constructor(private readonly limits: AdmissionLimits) {}

  get size(): number {
    return this.entries.size;
  }

  /** Registers a freshly accepted socket under its address key; evicts first if a cap is reached. */
  admit(socket: Socket, key: string): void {
    if (socket.remoteAddress === undefined || socket.remotePort === undefined) {
      socket.destroy(); // already gone: it has no identity to count under
      return;
    }
    const id = connectionId(socket);
    this.release(id);
    if ((this.perKey.get(key) ?? 0) >= this.limits.perAddress) this.evictOldest(key);
    if (this.entries.size >= this.limits.total) this.evictOldest(this.busiestKey());
    const timer = setTimeout(() => this.expire(id), this.limits.handshakeTimeoutMs);
    timer.unref();
    this.entries.set(id, { socket, key, seq: this.seq++, timer });
    this.perKey.set(key, (this.perKey.get(key) ?? 0) + 1);
    socket.once('close', () => this.release(id));
  }

  /** True while the connection is still waiting to authenticate (it was not evicted or timed out). */
  has(id: string): boolean {
    return this.entries.has(id);
  }

  /** Lets the session close itself politely when its time is up or it is evicted. */
  attach(id: string, end: (why: 'timeout' | 'evicted') => void): void {
    const e = this.entries.get(id);
    if (e) e.end = end;
  }

  /** The connection authenticated or closed: it no longer counts, and no timer runs for it. */
  release(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    clearTimeout(e.timer);
    this.entries.delete(id);
    const n = (this.perKey.get(e.key) ?? 1) - 1;
    if (n <= 0) this.perKey.delete(e.key);
    else this.perKey.set(e.key, n);
  }

  close(): void {
    for (const id of [...this.entries.keys()]) {
      const e = this.entries.get(id);
      this.release(id);
      e?.socket.destroy();
    }
  }

  private expire(id: string): void {
    this.cut(id, 'timeout');
  }

  private cut(id: string, why: 'timeout' | 'evicted'): void {
    const e = this.entries.get(id);
    if (!e) return;
    this.release(id);
    if (why === 'evicted') this.evicted++;
    if (e.end) e.end(why);
    else e.socket.destroy();
  }

  private busiestKey(): string | undefined {
    let best: string | undefined;
    let most = 0;
    for (const [k, n] of this.perKey) {
      if (n > most) {
        best = k;
        most = n;
      }
    }
    return best;
  }

  private evictOldest(key: string | undefined): void {
    let oldest: [string, Entry] | undefined;
    for (const entry of this.entries) {
      if (key !== undefined && entry[1].key !== key) continue;
      if (!oldest || entry[1].seq < oldest[1].seq) oldest = entry;
    }
    if (oldest) this.cut(oldest[0], 'evicted');
  }
}
