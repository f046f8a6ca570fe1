import http from 'node:http';
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { CoworkError } from '../errors.js';
import { dialWithTimeout, endWith, upstreamFailureStatus } from './dial.js';
import { checkRequestFraming } from './framing.js';
import { endToEndHeaders, headerObject } from './headers.js';
import { parseHttpTarget } from './http-target.js';
import { type Authorization, type EventCommon, type ProxyRuntime, recordRefusal } from './runtime.js';
import { closeTogether, decideHoldingClient, idleTimeout } from './tunnel.js';

type Allowed = Extract<Authorization, { ok: true }>;

/**
 * WebSocket upgrades over plain HTTP (`GET http://host/path` with `Upgrade: websocket`): decided
 * exactly like any other request to that URL; if allowed, the upgrade request goes to the checked
 * address and, on the upstream's 101, the two sockets are relayed untouched and recorded as one
 * tunnel with its byte counts. Any other upgrade protocol is refused.
 */
export async function openUpgrade(
  rt: ProxyRuntime,
  req: http.IncomingMessage,
  client: Duplex,
  head: Buffer,
  taskId: string | null,
): Promise<void> {
  const started = performance.now();
  const elapsed = () => performance.now() - started;
  client.on('error', () => client.destroy());
  const method = req.method ?? 'GET';
  const base = { type: 'egress.request' as const, taskId, kind: 'http' as const, method };
  const parsed = parseHttpTarget(method, req.url ?? '');
  const refusal = upgradeRefusal(req);
  if (refusal || !parsed.ok) {
    const { status, reason } = refusal ?? { status: 400, reason: (parsed as { reason: string }).reason };
    endWith(client, status, `cowork-vm egress proxy: refused: ${reason}.\n`);
    const where = parsed.ok ? { host: parsed.target.host.host, port: parsed.port, url: parsed.shownUrl } : {};
    recordRefusal(rt, { ...base, ...where }, { status, stage: 'invalid', reason }, elapsed());
    return;
  }
  const { target, url, shownUrl } = parsed;
  const common: EventCommon = { ...base, host: target.host.host, port: target.port, url: shownUrl };

  const decided = await decideHoldingClient(rt, client, head, target, taskId, {
    common,
    elapsed,
    goneReason: 'the client closed the connection before the upgrade was forwarded',
  });
  if (!decided) return;
  const { auth, held } = decided;
  const headers = headerObject(endToEndHeaders(req.rawHeaders, ['host', 'expect', 'content-length']));
  headers.host = url.host;
  headers.connection = 'Upgrade';
  headers.upgrade = 'websocket';
  relayUpgrade(
    rt,
    client,
    held,
    { auth, port: target.port, what: target.what, path: `${url.pathname}${url.search}`, headers },
    (o) => {
      const { ok: _ok, family: _family, ...allowed } = auth;
      rt.record({ ...common, ...allowed, decision: 'allow', durationMs: elapsed(), ...o });
    },
  );
}

/** Why this upgrade request is refused before any decision, or undefined. */
function upgradeRefusal(req: http.IncomingMessage): { status: 400 | 501; reason: string } | undefined {
  const framing = checkRequestFraming(req.method ?? 'GET', req.httpVersion, req.rawHeaders);
  if (!framing.ok) return { status: 400, reason: framing.reason };
  if (framing.body.kind !== 'none' && !(framing.body.kind === 'length' && framing.body.length === 0))
    return { status: 400, reason: 'an upgrade request with a body' };
  const upgrade = (req.headers.upgrade ?? '').trim().toLowerCase();
  if (req.method !== 'GET' || upgrade !== 'websocket') {
    return {
      status: 501,
      reason: `protocol upgrade ${JSON.stringify(upgrade.slice(0, 60))} with ${req.method}: only GET with "Upgrade: websocket" is forwarded (use CONNECT for anything else)`,
    };
  }
  return undefined;
}

interface UpgradePlan {
  auth: Allowed;
  port: number;
  what: string;
  path: string;
  headers: Record<string, string | string[]>;
}

type UpgradeOutcome = { status?: number; bytesIn: number; bytesOut: number; error?: string };

function relayUpgrade(
  rt: ProxyRuntime,
  client: Duplex,
  early: Buffer[],
  plan: UpgradePlan,
  record: (o: UpgradeOutcome) => void,
): void {
  const { auth } = plan;
  const upstream = http.request({
    method: 'GET',
    path: plan.path,
    headers: plan.headers,
    setHost: false,
    insecureHTTPParser: false,
    createConnection: () => {
      const s = dialWithTimeout(
        rt.dial,
        { address: auth.address, family: auth.family, port: plan.port },
        rt.limits.connectTimeoutMs,
      );
      rt.track(s);
      return s;
    },
  });
  let recorded = false;
  const recordOnce = (o: UpgradeOutcome) => {
    if (recorded) return;
    recorded = true;
    record(o);
  };
  let upgraded = false;
  // Until the 101 the upstream must answer within the idle timeout; after it the tunnel's own
  // idle timer takes over.
  const idleMs = rt.limits.tunnelIdleTimeoutMs;
  upstream.setTimeout(idleMs, () => {
    if (!upgraded) upstream.destroy(new CoworkError('timeout', `the upstream sent nothing for ${idleMs} ms`));
  });
  upstream.on('error', (err) => {
    if (upgraded) return; // the upgraded socket reports its own end
    const status = upstreamFailureStatus(err);
    endWith(
      client,
      status,
      `cowork-vm egress proxy: ${plan.what} was allowed but the connection to ${auth.address} failed: ${err.message}\n`,
    );
    recordOnce({ status, bytesIn: 0, bytesOut: 0, error: err.message });
  });
  client.once('close', () => upstream.destroy());
  upstream.on('upgrade', (up, socket: net.Socket, upHead: Buffer) => {
    upgraded = true;
    spliceUpgraded(rt, client, socket, up, upHead, early, recordOnce);
  });
  upstream.on('response', (up) => {
    // The upstream declined to switch: pass its answer on and close (the connection is spent).
    const lines = [`HTTP/1.1 ${up.statusCode} ${up.statusMessage ?? ''}`];
    for (const [n, v] of endToEndHeaders(up.rawHeaders, ['content-length'])) lines.push(`${n}: ${v}`);
    lines.push('Connection: close', '', '');
    client.write(lines.join('\r\n'));
    let bytesIn = 0;
    up.on('data', (d: Buffer) => {
      bytesIn += d.length;
    });
    up.pipe(client);
    up.on('aborted', () => client.destroy());
    up.on('close', () => {
      if (!client.writableEnded) client.end();
      recordOnce({ status: up.statusCode ?? 502, bytesIn, bytesOut: 0 });
    });
  });
  upstream.end();
}

/** After the upstream's 101: pass the 101 on and relay both sockets untouched. */
function spliceUpgraded(
  rt: ProxyRuntime,
  client: Duplex,
  socket: net.Socket,
  up: http.IncomingMessage,
  upHead: Buffer,
  early: Buffer[],
  record: (o: UpgradeOutcome) => void,
): void {
  const lines = [`HTTP/1.1 101 ${up.statusMessage || 'Switching Protocols'}`];
  const raw = up.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) lines.push(`${raw[i]}: ${raw[i + 1]}`);
  lines.push('', '');
  let bytesIn = upHead.length;
  let bytesOut = 0;
  socket.on('error', () => socket.destroy());
  closeTogether(client, socket, () => record({ status: 101, bytesIn, bytesOut }));
  idleTimeout(socket, rt.limits.tunnelIdleTimeoutMs);
  client.write(lines.join('\r\n'));
  if (upHead.length > 0) client.write(upHead);
  for (const chunk of early) {
    bytesOut += chunk.length;
    if (chunk.length > 0) socket.write(chunk);
  }
  socket.on('data', (d: Buffer) => {
    bytesIn += d.length;
  });
  client.on('data', (d: Buffer) => {
    bytesOut += d.length;
  });
  socket.pipe(client);
  client.pipe(socket);
  client.resume();
}
