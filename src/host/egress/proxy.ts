import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { ApprovalBroker } from '../approvals/types.js';
import { CoworkError } from '../errors.js';
import type { PolicyContextName } from '../policy/types.js';
import { TaskAttribution } from './attribution.js';
import { type EgressEvent, type EgressTimelineSink, toTimelineEvent } from './events.js';
import { forwardHttp } from './forward.js';
import { hostPortText, type NormalizedHost } from './host.js';
import {
  checkTarget,
  compileTestResolve,
  type LookupFn,
  systemLookup,
  type TestResolveMap,
} from './resolve.js';
import { compileRules, decideEgress, type EgressRules, type EgressRulesInput, grantKey } from './rules.js';
import { TaskApprovals } from './task-approvals.js';
import { openTunnel } from './tunnel.js';

/** Opens the TCP connection to a checked address. Tests inject one to see what is dialled. */
export type Dialer = (target: { address: string; family: 4 | 6; port: number }) => net.Socket;

export const defaultDialer: Dialer = ({ address, family, port }) =>
  net.connect({ host: address, port, family });

const defaultRecordError = (err: CoworkError): void =>
  process.emitWarning(err.message, 'CoworkEgressWarning');

export interface EgressProxyOptions {
  /** `[egress]` allow / deny / ask. Absent = deny everything. */
  rules?: EgressRulesInput | EgressRules;
  /**
   * Which task each request belongs to, from its Proxy-Authorization (default: a new, empty
   * one). The controller issues and revokes each task's credentials on it.
   */
  tasks?: TaskAttribution;
  /** Asked when a host is on neither list and `ask` is on. Without one, ask means deny. */
  broker?: ApprovalBroker;
  /** Loopback only: '127.0.0.1' (default) or '::1'. */
  listenHost?: string;
  /** 0 (default) = any free port. */
  port?: number;
  /** `[egress.testResolve]`: host name → IP(s). Refused unless allowTestResolve or env COWORK_VM_TEST_RESOLVE=1. */
  testResolve?: Record<string, string | string[]>;
  allowTestResolve?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Name resolution (default: the system resolver, dns.lookup with all addresses). */
  lookup?: LookupFn;
  dial?: Dialer;
  onEvent?: (event: EgressEvent) => void;
  /** Receives every event in the timeline's `egress.request` shape (pass the Timeline). */
  timeline?: EgressTimelineSink;
  /** Called when onEvent or the timeline throws, or a request fails unexpectedly (default: a process warning). */
  onRecordError?: (err: CoworkError) => void;
  /** Policy context shown with approvals (default 'agent'). */
  context?: PolicyContextName;
  approvalTimeoutMs?: number;
  connectTimeoutMs?: number; // default 10 s
  idleTimeoutMs?: number; // default 5 min
}

export interface EgressTarget {
  kind: 'http' | 'connect';
  method: string;
  host: NormalizedHost;
  port: number;
  url?: string;
  /** 'GET http://host/path' or 'CONNECT host:443', for approvals and messages. */
  what: string;
}

export type Authorization =
  | {
      ok: true;
      address: string;
      family: 4 | 6;
      stage: EgressEvent['stage'];
      reason: string;
      rule?: string;
      approvedBy?: string;
    }
  | {
      ok: false;
      status: 403 | 502;
      stage: EgressEvent['stage'];
      reason: string;
      rule?: string;
      address?: string;
      verdictMessage?: string;
    };

/** Records a refused request (HTTP or CONNECT) with the reason the proxy decided on. */
export function recordDenial(
  rt: Pick<ProxyRuntime, 'record'>,
  common: Omit<
    EgressEvent,
    'decision' | 'status' | 'bytesIn' | 'bytesOut' | 'durationMs' | 'stage' | 'reason'
  >,
  auth: Extract<Authorization, { ok: false }>,
  durationMs: number,
): void {
  const { ok: _ok, status, verdictMessage: _v, ...rest } = auth;
  rt.record({
    ...common,
    ...rest,
    decision: 'deny',
    status,
    bytesIn: 0,
    bytesOut: 0,
    durationMs,
  } as EgressEvent);
}

/** Records an allowed request whose client left while it was being decided: nothing was dialled. */
export function recordClientGone(
  rt: Pick<ProxyRuntime, 'record'>,
  common: Omit<
    EgressEvent,
    'decision' | 'status' | 'bytesIn' | 'bytesOut' | 'durationMs' | 'stage' | 'reason'
  >,
  allowed: Omit<Extract<Authorization, { ok: true }>, 'ok' | 'family'>,
  durationMs: number,
  error: string,
): void {
  rt.record({
    ...common,
    ...allowed,
    decision: 'allow',
    bytesIn: 0,
    bytesOut: 0,
    durationMs,
    error,
  } as EgressEvent);
}

/** What the forwarding and tunnelling halves need from the proxy. */
export interface ProxyRuntime {
  readonly dial: Dialer;
  readonly agent: http.Agent;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  authorize(target: EgressTarget, taskId: string | null): Promise<Authorization>;
  record(event: EgressEvent): void;
  track(socket: Duplex): void;
}

/**
 * The guest's only route out: an HTTP forward proxy with CONNECT tunnels (no TLS
 * interception) on a host loopback port, which QEMU's guestfwd connects the guest to.
 * Every request is decided (deny list → allow list → port → task approvals → ask → deny),
 * resolved once, checked against the SSRF guard, dialled at the checked address and recorded.
 */
export class EgressProxy {
  private rules: EgressRules;
  private readonly testResolve: TestResolveMap;
  private readonly lookup: LookupFn;
  private readonly approvals: TaskApprovals;
  /** Issues and checks per-task proxy credentials; a request without valid ones is no task's. */
  readonly tasks: TaskAttribution;
  private readonly server: http.Server;
  private readonly sockets = new Set<Duplex>();
  private readonly runtime: ProxyRuntime;
  private listening: { host: string; port: number } | undefined;
  private closed = false;

  constructor(private readonly opts: EgressProxyOptions = {}) {
    this.rules = compileRules(opts.rules);
    const env = opts.env ?? process.env;
    this.testResolve = compileTestResolve(
      opts.testResolve,
      opts.allowTestResolve === true || env.COWORK_VM_TEST_RESOLVE === '1',
    );
    const listenHost = opts.listenHost ?? '127.0.0.1';
    if (listenHost !== '127.0.0.1' && listenHost !== '::1') {
      throw new CoworkError(
        'invalidArgument',
        `the egress proxy listens on loopback only (127.0.0.1 or ::1), not ${JSON.stringify(listenHost)}`,
      );
    }
    this.lookup = opts.lookup ?? systemLookup;
    this.tasks = opts.tasks ?? new TaskAttribution();
    this.approvals = new TaskApprovals(opts.broker, opts.approvalTimeoutMs, this.tasks);
    const taskOf = (req: http.IncomingMessage) => this.tasks.attribute(req.headers['proxy-authorization']);
    const dial = opts.dial ?? defaultDialer;
    const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 16 });
    // Every upstream socket goes through the dialer, which only ever sees checked addresses.
    agent.createConnection = ((o: { host?: string; port?: number; family?: number }) =>
      dial({ address: o.host ?? '', port: Number(o.port), family: o.family === 6 ? 6 : 4 })) as never;
    this.runtime = {
      dial,
      agent,
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
      idleTimeoutMs: opts.idleTimeoutMs ?? 300_000,
      authorize: (t, task) => this.authorize(t, task),
      record: (e) => this.record(e),
      track: (s) => this.track(s),
    };
    this.server = http.createServer({ requestTimeout: 0 });
    this.server.on('connection', (s: net.Socket) => this.track(s));
    // A bug or a hostile upstream must cost one connection, never the process.
    const contain = (socket: Duplex) => (err: unknown) => {
      socket.destroy();
      (this.opts.onRecordError ?? defaultRecordError)(
        CoworkError.from(err, 'internal', 'egress proxy request failed'),
      );
    };
    this.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) =>
      forwardHttp(this.runtime, req, res, taskOf(req)).catch(contain(req.socket)),
    );
    this.server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) =>
      openTunnel(this.runtime, req, socket, head, taskOf(req)).catch(contain(socket)),
    );
    // WebSockets and other upgrades travel through CONNECT (browsers tunnel ws:// that way too).
    this.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex) => {
      const body =
        'cowork-vm egress proxy: protocol upgrades over plain HTTP are not forwarded; use CONNECT.\n';
      socket.on('error', () => socket.destroy());
      socket.end(
        `HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\n` +
          `Connection: close\r\n\r\n${body}`,
      );
      const reason = 'protocol upgrade over plain HTTP (not forwarded)';
      this.record({
        ...{ type: 'egress.request', taskId: taskOf(req), kind: 'http', method: req.method ?? 'GET' },
        ...{ host: '', port: 0, decision: 'deny', stage: 'invalid', reason, status: 501 },
        ...{ bytesIn: 0, bytesOut: 0, durationMs: 0 },
      });
    });
    this.server.on('clientError', (_err, socket: Duplex) => {
      if (socket.writable)
        socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
    });
  }

  async start(): Promise<{ host: string; port: number }> {
    if (this.closed) throw new CoworkError('invalidState', 'this egress proxy was closed; create a new one');
    if (this.listening) return this.listening;
    const host = this.opts.listenHost ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) =>
        reject(
          new CoworkError('unavailable', `the egress proxy could not listen on ${host}: ${err.message}`, err),
        );
      this.server.once('error', onError);
      this.server.listen(this.opts.port ?? 0, host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    const addr = this.server.address() as net.AddressInfo;
    this.listening = { host, port: addr.port };
    return this.listening;
  }

  get port(): number | undefined {
    return this.listening?.port;
  }

  /** Stops listening and destroys every open connection and tunnel. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const done = this.listening ? new Promise<void>((r) => this.server.close(() => r())) : Promise.resolve();
    for (const s of this.sockets) s.destroy();
    this.runtime.agent.destroy();
    await done;
    this.listening = undefined;
  }

  /** Requests now held until a user answers an approval. */
  get waitingForApproval(): number {
    return this.approvals.waiting;
  }

  approvedHosts(taskId: string | null): ReadonlySet<string> {
    return this.approvals.hostsFor(taskId);
  }

  /** Replaces the rules (e.g. after the config changed); applies to new requests. */
  setRules(rules: EgressRulesInput | EgressRules): void {
    this.rules = compileRules(rules);
  }

  private async authorize(target: EgressTarget, taskId: string | null): Promise<Authorization> {
    const { host, port } = target;
    const decision = decideEgress(
      { host: host.host, port, kind: target.kind },
      this.rules,
      this.approvals.hostsFor(taskId),
    );
    const rule = decision.rule === undefined ? {} : { rule: decision.rule };
    if (decision.effect === 'deny')
      return { ok: false, status: 403, stage: decision.stage, reason: decision.reason, ...rule };
    const checked = await checkTarget(host, port, target.kind, this.rules, {
      lookup: this.lookup,
      testResolve: this.testResolve,
    });
    if (!checked.ok) {
      const { ok: _ok, ...failure } = checked;
      return { ok: false, ...failure, status: checked.stage === 'resolve' ? 502 : 403 };
    }
    const dialled = { address: checked.address, family: checked.family };
    if (decision.effect === 'allow')
      return { ok: true, ...dialled, stage: decision.stage, reason: decision.reason, ...rule };
    if (!this.approvals.hasBroker) {
      const reason = `${decision.reason} and no approval frontend is connected to ask a user`;
      return { ok: false, status: 403, stage: 'approval', reason };
    }
    const verdict = await this.approvals.ask(taskId, grantKey(host), {
      ...(taskId === null ? {} : { taskId }),
      tool: 'egress',
      command: target.what,
      input: { host: host.host, port, method: target.method, url: target.url, address: checked.address },
      risk: 'network',
      context: this.opts.context ?? 'agent',
      reasons: [decision.reason, `${hostPortText(host.host, port)} resolves to ${checked.address}`],
    });
    if (verdict.kind === 'deny') {
      return {
        ok: false,
        status: 403,
        stage: 'approval',
        reason: `a user denied ${target.what} (answered by ${verdict.by})`,
        ...(verdict.message ? { verdictMessage: verdict.message } : {}),
      };
    }
    const reason = `${host.host} was approved (${verdict.kind}) by ${verdict.by}`;
    return { ok: true, ...dialled, stage: 'approval', reason, approvedBy: verdict.by };
  }

  private record(event: EgressEvent): void {
    // A broken sink must not take the proxy down (the request was already decided), but the
    // failure is reported, never swallowed.
    for (const sink of [
      () => this.opts.onEvent?.(event),
      () => this.opts.timeline?.record(event.taskId, toTimelineEvent(event)),
    ]) {
      try {
        sink();
      } catch (err) {
        (this.opts.onRecordError ?? defaultRecordError)(
          CoworkError.from(err, 'internal', 'egress event not recorded'),
        );
      }
    }
  }

  private track(socket: Duplex): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }
}
