import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { ClientConnection } from './client-connection.js';
import type { CredentialGate } from './credential-gate.js';
import type { EgressEvent } from './events.js';
import type { NormalizedHost } from './host.js';
import type { ProxyLimits } from './limits.js';

/**
 * What the forwarding, tunnelling and upgrade halves share with the proxy. They import this
 * module, never proxy.ts, so the proxy can import them without a cycle.
 */

/** Opens the TCP connection to a checked address. Tests inject one to see what is dialled. */
export type Dialer = (target: { address: string; family: 4 | 6; port: number }) => net.Socket;

export const defaultDialer: Dialer = ({ address, family, port }) =>
  net.connect({ host: address, port, family });

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

export interface ProxyRuntime {
  readonly dial: Dialer;
  readonly limits: ProxyLimits;
  authorize(target: EgressTarget, taskId: string | null): Promise<Authorization>;
  record(event: EgressEvent): void;
  track(socket: Duplex): void;
  /** The per-client-connection state (its own upstream pool, what it has in flight). */
  connectionOf(socket: Duplex): ClientConnection;
  /** Hosts with a credential rule (TLS terminated, credential added); absent when there are none. */
  readonly credentials?: CredentialGate;
}

/** The fields every event of one request shares, before the outcome is known. */
export type EventCommon = Omit<
  EgressEvent,
  'decision' | 'status' | 'bytesIn' | 'bytesOut' | 'durationMs' | 'stage' | 'reason'
>;

/** Authorizes, turning a failure to decide into a 502 refusal (never an allow). */
export async function authorizeOrRefuse(
  rt: ProxyRuntime,
  target: EgressTarget,
  taskId: string | null,
): Promise<Authorization> {
  try {
    return await rt.authorize(target, taskId);
  } catch (err) {
    return { ok: false, status: 502, stage: 'resolve', reason: `the proxy failed to decide: ${String(err)}` };
  }
}

/** Records a refused request (HTTP or CONNECT) with the reason the proxy decided on. */
export function recordDenial(
  rt: Pick<ProxyRuntime, 'record'>,
  common: EventCommon,
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

/**
 * Records a request refused before any decision: malformed, ambiguously framed, or over a
 * limit. Nothing was dialled.
 */
export function recordRefusal(
  rt: Pick<ProxyRuntime, 'record'>,
  common: Partial<EventCommon> & Pick<EventCommon, 'type' | 'taskId' | 'kind' | 'method'>,
  refusal: { status: number; stage: 'invalid' | 'limit'; reason: string },
  durationMs: number,
): void {
  rt.record({
    host: '',
    port: 0,
    ...common,
    decision: 'deny',
    ...refusal,
    bytesIn: 0,
    bytesOut: 0,
    durationMs,
  });
}

/** Records an allowed request whose client left while it was being decided: nothing was dialled. */
export function recordClientGone(
  rt: Pick<ProxyRuntime, 'record'>,
  common: EventCommon,
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
