import http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { ApprovalBroker } from '../approvals/types.js';
import { CoworkError } from '../errors.js';
import type { PolicyContextName } from '../policy/types.js';
import { TaskAttribution } from './attribution.js';
import { ConnectionGate } from './connection-gate.js';
import { CredentialGate, hostRoots } from './credential-gate.js';
import type { CredentialRule } from './credentials.js';
import { type EgressEvent, type EgressTimelineSink, toTimelineEvent } from './events.js';
import { forwardHttp } from './forward.js';
import { hostPortText } from './host.js';
import { type ProxyLimits, resolveLimits } from './limits.js';
import {
  checkTarget,
  compileTestResolve,
  type LookupFn,
  systemLookup,
  type TestResolveMap,
} from './resolve.js';
import { compileRules, decideEgress, type EgressRules, type EgressRulesInput, grantKey } from './rules.js';
import {
  type Authorization,
  type Dialer,
  defaultDialer,
  type EgressTarget,
  type ProxyRuntime,
} from './runtime.js';
import { SandboxCA } from './sandbox-ca.js';
import { TaskApprovals } from './task-approvals.js';
import { openTunnel } from './tunnel.js';
import { openUpgrade } from './upgrade.js';

const defaultRecordError = (err: CoworkError): void =>
  process.emitWarning(err.message, 'CoworkEgressWarning');

export interface EgressProxyOptions extends Partial<ProxyLimits> {
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
  /**
   * `[[egress.credentials]]` with their secrets read (egress/credentials.ts resolveCredentials).
   * For these hosts TLS is terminated with a new per-proxy CA (`caCertPem`) and the credential
   * added; every other host stays a blind tunnel.
   */
  credentials?: readonly CredentialRule[];
  /** Roots upstream certificates of credential hosts are verified against (default: hostRoots()). */
  upstreamRoots?: readonly string[];
}

/** Who a request is made for; the one place a request is attributed before anything else. */
export interface Admission {
  taskId: string | null;
}

/**
 * The guest's only route out: an HTTP forward proxy with CONNECT tunnels and WebSocket upgrades
 * (TLS terminated only for hosts with a credential rule: credential-gate.ts) on a host loopback port, which the guest reaches over the sandbox's SSH session (QEMU) or vsock (VZ).
 * Every request is checked for unambiguous framing, decided (deny list → allow list → port →
 * task approvals → ask → deny), resolved once, checked against the SSRF guard, dialled at the
 * checked address and recorded. Every connection is bounded in time and their number is capped.
 */
export class EgressProxy {
  private rules: EgressRules;
  private readonly testResolve: TestResolveMap;
  private readonly lookup: LookupFn;
  private readonly approvals: TaskApprovals;
  /** Issues and checks per-task proxy credentials; a request without valid ones is no task's. */
  readonly tasks: TaskAttribution;
  private readonly server: http.Server;
  private readonly limits: ProxyLimits;
  /** Every open socket, client and upstream, so close() can end them all. */
  private readonly sockets = new Set<Duplex>();
  private readonly gate: ConnectionGate;
  private readonly runtime: ProxyRuntime;
  private readonly ca: SandboxCA | undefined;
  private listening: { host: string; port: number } | undefined;
  private closed = false;

  constructor(private readonly opts: EgressProxyOptions = {}) {
    this.rules = compileRules(opts.rules);
    this.limits = resolveLimits(opts);
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
    const dial = opts.dial ?? defaultDialer;
    const runtime: { -readonly [K in keyof ProxyRuntime]: ProxyRuntime[K] } = {
      dial,
      limits: this.limits,
      authorize: (t, task) => this.authorize(t, task),
      record: (e) => this.record(e),
      track: (s) => this.track(s),
      connectionOf: (s) => this.gate.connectionOf(s),
    };
    this.runtime = runtime;
    if (opts.credentials && opts.credentials.length > 0) {
      this.ca = SandboxCA.create();
      runtime.credentials = new CredentialGate(
        runtime,
        this.ca,
        opts.credentials,
        opts.upstreamRoots ?? hostRoots(),
      );
    }
    this.gate = new ConnectionGate(
      this.runtime,
      (req) => this.admit(req),
      (s) => this.contain(s),
    );
    this.server = this.createServer();
  }

  private createServer(): http.Server {
    const { headersTimeoutMs, idleTimeoutMs, maxHeaderBytes } = this.limits;
    const server = http.createServer({
      // The whole-request timer stays off (uploads and approvals may take long); headers must
      // arrive within headersTimeoutMs, and stalls after that are bounded by the upstream's
      // idle timeout. Node's default ties headersTimeout to requestTimeout, so both are set.
      requestTimeout: 0,
      headersTimeout: headersTimeoutMs,
      keepAliveTimeout: idleTimeoutMs,
      connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(headersTimeoutMs / 4))),
      maxHeaderSize: maxHeaderBytes,
      // Never the lenient parser, whatever NODE_OPTIONS says: it is what keeps framing unambiguous.
      insecureHTTPParser: false,
    });
    server.on('connection', (s: net.Socket) => {
      this.track(s);
      if (!this.closed) this.gate.accept(s);
    });
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (this.gate.refuseIfOverCap(req.socket)) return;
      const { taskId } = this.admit(req);
      forwardHttp(this.runtime, req, res, taskId).catch(this.contain(req.socket));
    });
    server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) =>
      this.gate.takeOver(req, socket, (taskId) => openTunnel(this.runtime, req, socket, head, taskId)),
    );
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) =>
      this.gate.takeOver(req, socket, (taskId) => openUpgrade(this.runtime, req, socket, head, taskId)),
    );
    server.on('clientError', (err: Error & { code?: string }, socket: Duplex) =>
      this.gate.answerClientError(err, socket),
    );
    return server;
  }

  /**
   * Attributes a request to the task it is made for: the one admission point. Every request,
   * CONNECT and upgrade passes through here once, before framing checks and decisions; `req` is
   * undefined for bytes that never became a request (parser errors, connections over the cap).
   */
  private admit(req: http.IncomingMessage | undefined): Admission {
    return { taskId: req ? this.tasks.attribute(req.headers['proxy-authorization']) : null };
  }

  /** A bug or a hostile upstream must cost one connection, never the process. */
  private contain(socket: Duplex): (err: unknown) => void {
    return (err) => {
      socket.destroy();
      (this.opts.onRecordError ?? defaultRecordError)(
        CoworkError.from(err, 'internal', 'egress proxy request failed'),
      );
    };
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
    await done;
    this.listening = undefined;
  }

  /** Client connections open now (tunnels included); at most `maxConnections`. */
  get openConnections(): number {
    return this.gate.openConnections;
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

  /**
   * The sandbox CA's certificate (PEM) when there are credential rules: the guest must trust it
   * (seed `trust/`). Its key never leaves this object.
   */
  get caCertPem(): string | undefined {
    return this.ca?.certPem;
  }

  private async authorize(target: EgressTarget, taskId: string | null): Promise<Authorization> {
    const { host, port } = target;
    const credentialed = this.runtime.credentials?.ruleFor(host.host);
    if (credentialed && (target.kind !== 'connect' || port !== 443)) {
      const reason = `${host.host} has a credential rule, so it is reachable over HTTPS on port 443 only (no credential travels in the clear or to another port)`;
      return { ok: false, status: 403, stage: 'credential', reason, rule: host.host };
    }
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
