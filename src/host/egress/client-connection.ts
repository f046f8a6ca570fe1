import http from 'node:http';
import type { Duplex } from 'node:stream';
import { dialWithTimeout } from './dial.js';
import type { ProxyLimits } from './limits.js';
import type { Dialer } from './runtime.js';

/** Unanswered requests one connection may have; the next is refused and the connection closed. */
export const MAX_PIPELINED = 32;

/**
 * One guest connection to the proxy. It owns its upstream connections: a kept-alive upstream
 * socket serves only the requests of this one client connection (so a desynchronised upstream
 * can never answer another client), and the pool is thrown away on any anomaly and when the
 * client goes. It also counts the requests still being answered, so that a CONNECT or an
 * upgrade pipelined behind them is not answered out of order.
 */
export class ClientConnection {
  private agent: http.Agent | undefined;
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];
  private closed = false;
  private refusing = false;

  constructor(
    socket: Duplex,
    private readonly dial: Dialer,
    private readonly limits: ProxyLimits,
  ) {
    socket.once('close', () => {
      this.closed = true;
      this.discardUpstreams();
      this.wakeIdle();
    });
  }

  /** This connection's own upstream pool (one kept-alive socket per upstream at most). */
  upstreamAgent(): http.Agent {
    if (this.agent) return this.agent;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1 });
    // Every upstream socket goes through the dialer, which only ever sees checked addresses.
    agent.createConnection = ((o: { host?: string; port?: number; family?: number }) =>
      dialWithTimeout(
        this.dial,
        { address: o.host ?? '', port: Number(o.port), family: o.family === 6 ? 6 : 4 },
        this.limits.connectTimeoutMs,
      )) as never;
    this.agent = agent;
    return agent;
  }

  /** After an anomaly (an error, a cut response, a refused request): no upstream socket is reused. */
  discardUpstreams(): void {
    this.agent?.destroy();
    this.agent = undefined;
  }

  /** Counts a request until its response is finished or abandoned. */
  begin(res: http.ServerResponse): void {
    this.inFlight += 1;
    res.once('close', () => {
      this.inFlight -= 1;
      if (this.inFlight === 0) this.wakeIdle();
    });
  }

  /**
   * After a refused request the connection is answered once more (the refusal, with
   * Connection: close) and then closed; requests already pipelined behind it are never handled.
   */
  refuseRest(): void {
    this.refusing = true;
  }

  get refused(): boolean {
    return this.refusing;
  }

  /** True when this connection already has as many unanswered requests as it may. */
  get pipelineFull(): boolean {
    return this.inFlight >= MAX_PIPELINED;
  }

  get busy(): boolean {
    return this.inFlight > 0;
  }

  /** Resolves once every earlier request was answered (or the connection closed). */
  whenIdle(): Promise<void> {
    if (this.inFlight === 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private wakeIdle(): void {
    for (const w of this.idleWaiters.splice(0)) w();
  }
}
