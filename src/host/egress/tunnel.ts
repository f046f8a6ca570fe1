import type http from 'node:http';
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { CoworkError } from '../errors.js';
import { denyMessage } from './deny-message.js';
import { dialWithTimeout, endWith, upstreamFailureStatus } from './dial.js';
import { checkRequestFraming } from './framing.js';
import { parseConnectAuthority } from './host.js';
import {
  type Authorization,
  authorizeOrRefuse,
  type EgressTarget,
  type EventCommon,
  type ProxyRuntime,
  recordClientGone,
  recordDenial,
  recordRefusal,
} from './runtime.js';

type Allowed = Extract<Authorization, { ok: true }>;

/**
 * CONNECT tunnels: the proxy answers 200 only after the target was decided, checked and
 * dialled; a refusal is a complete response and the tunnel is never opened. Bytes are relayed
 * untouched (no TLS interception), except to a host with a credential rule, which the
 * CredentialGate serves instead.
 */
export async function openTunnel(
  rt: ProxyRuntime,
  req: http.IncomingMessage,
  client: Duplex,
  head: Buffer,
  taskId: string | null,
): Promise<void> {
  const started = performance.now();
  const elapsed = () => performance.now() - started;
  client.on('error', () => client.destroy());
  const base = { type: 'egress.request' as const, taskId, kind: 'connect' as const, method: 'CONNECT' };
  const authority = req.url ?? '';
  const parsed = parseConnectAuthority(authority);
  const framing = checkRequestFraming('CONNECT', req.httpVersion, req.rawHeaders);
  if (!parsed || !framing.ok) {
    const reason = !framing.ok
      ? framing.reason
      : `${JSON.stringify(authority.slice(0, 200))} is not a host:port CONNECT target`;
    endWith(client, 400, `cowork-vm egress proxy: refused: ${reason}.\n`);
    const where = parsed ? { host: parsed.host.host, port: parsed.port } : {};
    recordRefusal(rt, { ...base, ...where }, { status: 400, stage: 'invalid', reason }, elapsed());
    return;
  }
  const { host, port } = parsed;
  const target: EgressTarget = {
    kind: 'connect',
    method: 'CONNECT',
    host,
    port,
    what: `CONNECT ${authority}`,
  };
  const common: EventCommon = { ...base, host: host.host, port };

  const decided = await decideHoldingClient(rt, client, head, target, taskId, {
    common,
    elapsed,
    goneReason: 'the client closed the connection before the tunnel was opened',
  });
  if (!decided) return;
  const { auth, held } = decided;
  const recordTunnel = (outcome: TunnelOutcome) => {
    const { ok: _ok, family: _family, ...allowed } = auth;
    rt.record({ ...common, ...allowed, decision: 'allow', durationMs: elapsed(), ...outcome });
  };
  // A host with a credential rule is never a blind tunnel (authorize let only port 443 through).
  const rule = rt.credentials?.ruleFor(host.host);
  if (rule && rt.credentials) {
    rt.credentials.terminate(client, held, { rule, target, auth, taskId }, recordTunnel);
    return;
  }
  relayTunnel(rt, client, held, target, auth, recordTunnel);
}

/**
 * Decides a tunnel-like target (CONNECT, an upgrade) while holding the client's early bytes. A
 * refusal is answered and recorded; a client that left during the decision (e.g. while an
 * approval was pending) is recorded and nothing is dialled. Either way: undefined.
 */
export async function decideHoldingClient(
  rt: ProxyRuntime,
  client: Duplex,
  head: Buffer,
  target: EgressTarget,
  taskId: string | null,
  ev: { common: EventCommon; elapsed: () => number; goneReason: string },
): Promise<{ auth: Allowed; held: Buffer[] } | undefined> {
  const early = holdEarlyData(client, head);
  const auth = await authorizeOrRefuse(rt, target, taskId);
  const held = early.release();
  if (!auth.ok) {
    const where = { host: target.host.host, port: target.port };
    endWith(client, auth.status, denyMessage({ ...auth, what: target.what, ...where }));
    recordDenial(rt, ev.common, auth, ev.elapsed());
    return undefined;
  }
  if (early.gone() || client.destroyed) {
    client.destroy();
    const { ok: _ok, family: _family, ...allowed } = auth;
    recordClientGone(rt, ev.common, allowed, ev.elapsed(), ev.goneReason);
    return undefined;
  }
  return { auth, held };
}

/**
 * While the target is decided (an approval can take minutes) keep reading the client, so that
 * a client that goes away is noticed; bytes it sends early are held, up to a cap.
 */
export function holdEarlyData(client: Duplex, head: Buffer): { release(): Buffer[]; gone(): boolean } {
  const early: Buffer[] = [head];
  let earlyBytes = head.length;
  let gone = false;
  const hold = (d: Buffer) => {
    earlyBytes += d.length;
    if (earlyBytes > EARLY_DATA_CAP) client.destroy();
    else early.push(d);
  };
  const onGone = () => {
    gone = true;
  };
  client.on('data', hold);
  client.once('end', onGone);
  client.once('close', onGone);
  return {
    release: () => {
      client.off('data', hold);
      client.pause(); // nothing may be dropped between now and the pipe to the upstream
      return early;
    },
    gone: () => gone,
  };
}

type TunnelOutcome = { status: number; bytesIn: number; bytesOut: number; error?: string };

/**
 * Dials the checked address, answers 200 once connected, and relays both ways until either side
 * closes or the tunnel is idle too long; records once, when both sides are closed.
 */
function relayTunnel(
  rt: ProxyRuntime,
  client: Duplex,
  early: Buffer[],
  target: EgressTarget,
  auth: Allowed,
  record: (outcome: TunnelOutcome) => void,
): void {
  const upstream = dialWithTimeout(
    rt.dial,
    { address: auth.address, family: auth.family, port: target.port },
    rt.limits.connectTimeoutMs,
  );
  rt.track(upstream);
  let connected = false;
  let error: string | undefined;
  let failStatus: number | undefined;
  closeTogether(client, upstream, () =>
    record({
      status: connected ? 200 : (failStatus ?? 502),
      bytesIn: upstream.bytesRead,
      bytesOut: upstream.bytesWritten,
      ...(error ? { error } : {}),
    }),
  );
  upstream.on('error', (err) => {
    error = err.message;
    if (!connected) {
      failStatus = upstreamFailureStatus(err);
      endWith(
        client,
        failStatus,
        `cowork-vm egress proxy: ${target.what} was allowed but the connection to ${auth.address} failed: ${err.message}\n`,
      );
    }
    upstream.destroy();
  });
  upstream.once('connect', () => {
    connected = true;
    idleTimeout(upstream, rt.limits.tunnelIdleTimeoutMs);
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    for (const chunk of early) if (chunk.length > 0) upstream.write(chunk);
    upstream.pipe(client);
    client.pipe(upstream);
  });
}

/** When one side closes the other is destroyed; `done` runs once both are closed. */
export function closeTogether(a: Duplex, b: Duplex, done: () => void): void {
  let closes = 0;
  const onClose = () => {
    closes += 1;
    if (closes === 1) {
      a.destroy();
      b.destroy();
      return;
    }
    done();
  };
  a.once('close', onClose);
  b.once('close', onClose);
}

/** The upstream socket sees traffic in both directions of a tunnel: idle there is idle. */
export function idleTimeout(upstream: net.Socket, ms: number): void {
  upstream.setTimeout(ms, () =>
    upstream.destroy(new CoworkError('timeout', `the tunnel carried nothing for ${ms} ms`)),
  );
}

const EARLY_DATA_CAP = 64 * 1024;
