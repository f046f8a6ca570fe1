import type http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { denyMessage } from './deny-message.js';
import { parseConnectAuthority } from './host.js';
import {
  type Authorization,
  type EgressTarget,
  type ProxyRuntime,
  recordClientGone,
  recordDenial,
} from './proxy.js';

/**
 * CONNECT tunnels: the proxy answers 200 only after the target was decided, checked and
 * dialled; a refusal is a complete 403 response and the tunnel is never opened. Bytes are
 * relayed untouched (no TLS interception).
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
  rt.track(client);
  client.on('error', () => client.destroy());
  const base = { type: 'egress.request' as const, taskId, kind: 'connect' as const, method: 'CONNECT' };
  const authority = req.url ?? '';
  const parsed = parseConnectAuthority(authority);
  if (!parsed) {
    const reason = `${JSON.stringify(authority.slice(0, 200))} is not a host:port CONNECT target`;
    endWith(client, 400, `cowork-vm egress proxy: ${reason}.\n`);
    rt.record({
      ...base,
      host: '',
      port: 0,
      decision: 'deny',
      stage: 'invalid',
      reason,
      status: 400,
      bytesIn: 0,
      bytesOut: 0,
      durationMs: elapsed(),
    });
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
  const common = { ...base, host: host.host, port };

  // While the target is decided (an approval can take minutes) keep reading the client, so
  // that a client that goes away is noticed; bytes it sends early are held, up to a cap.
  const early: Buffer[] = [head];
  let earlyBytes = head.length;
  let gone = false;
  const hold = (d: Buffer) => {
    earlyBytes += d.length;
    if (earlyBytes > EARLY_DATA_CAP) client.destroy();
    else early.push(d);
  };
  client.on('data', hold);
  client.once('end', () => {
    gone = true;
  });
  client.once('close', () => {
    gone = true;
  });

  let auth: Authorization;
  try {
    auth = await rt.authorize(target, taskId);
  } catch (err) {
    auth = { ok: false, status: 502, stage: 'resolve', reason: `the proxy failed to decide: ${String(err)}` };
  }
  client.off('data', hold);
  client.pause(); // nothing may be dropped between now and the pipe to the upstream
  if (!auth.ok) {
    endWith(client, auth.status, denyMessage({ ...auth, what: target.what, host: host.host, port }));
    recordDenial(rt, common, auth, elapsed());
    return;
  }
  const { ok: _ok, family: _family, ...allowed } = auth;
  if (gone || client.destroyed) {
    client.destroy();
    // The client left while the tunnel was being decided (e.g. during an approval): dial nothing.
    recordClientGone(
      rt,
      common,
      allowed,
      elapsed(),
      'the client closed the connection before the tunnel was opened',
    );
    return;
  }

  const upstream = rt.dial({ address: auth.address, family: auth.family, port });
  rt.track(upstream);
  let connected = false;
  let error: string | undefined;
  let closes = 0;
  const onClose = () => {
    closes += 1;
    if (closes === 1) {
      // One side is gone: the tunnel is over.
      client.destroy();
      upstream.destroy();
      return;
    }
    rt.record({
      ...common,
      ...allowed,
      decision: 'allow',
      status: connected ? 200 : 502,
      bytesIn: upstream.bytesRead,
      bytesOut: upstream.bytesWritten,
      durationMs: elapsed(),
      ...(error ? { error } : {}),
    });
  };
  client.once('close', onClose);
  upstream.once('close', onClose);
  upstream.setTimeout(rt.connectTimeoutMs, () =>
    upstream.destroy(new Error(connected ? 'the tunnel was idle too long' : 'connection timed out')),
  );
  upstream.on('error', (err) => {
    error = err.message;
    if (!connected) {
      endWith(
        client,
        502,
        `cowork-vm egress proxy: ${target.what} was allowed but the connection to ${auth.address} failed: ${err.message}\n`,
      );
    }
    upstream.destroy();
  });
  upstream.once('connect', () => {
    connected = true;
    upstream.setTimeout(rt.idleTimeoutMs);
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    for (const chunk of early) if (chunk.length > 0) upstream.write(chunk);
    upstream.pipe(client);
    client.pipe(upstream);
  });
}

const EARLY_DATA_CAP = 64 * 1024;

function endWith(socket: Duplex, status: 400 | 403 | 502, body: string): void {
  const text = status === 403 ? 'Forbidden' : status === 400 ? 'Bad Request' : 'Bad Gateway';
  const length = Buffer.byteLength(body);
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${length}\r\n` +
      `X-Cowork-Egress: ${status === 403 ? 'denied' : 'error'}\r\nConnection: close\r\n\r\n${body}`,
  );
}
