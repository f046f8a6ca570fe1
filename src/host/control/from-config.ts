import { readFileSync } from 'node:fs';
import type { ControllerApi } from '../api/controller.js';
import type { ControlConfig } from '../config/schema.js';
import { CoworkError } from '../errors.js';
import type { Clock, SecurityRecorder } from './events.js';
import { listenRefusal } from './net.js';
import { ControlServer } from './server.js';
import type { ControlStore } from './store.js';

/** "127.0.0.1:7077" / "[::1]:7077" / "localhost:7077" → { host, port }. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port > 65535) {
    throw new CoworkError(
      'invalidArgument',
      `control.listen = "${listen}" is not "HOST:PORT", e.g. "127.0.0.1:7077"`,
    );
  }
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/**
 * Fails before anything is bound (or a VM is booted) when the listen address would expose the
 * API without TLS, or off loopback without allowRemote; the message says how to fix it.
 */
export function assertListenAllowed(control: Pick<ControlConfig, 'listen' | 'allowRemote' | 'tls'>): void {
  if (!control.listen) return;
  const { host } = parseListen(control.listen);
  const refusal = listenRefusal(host, { allowRemote: control.allowRemote, tls: !!control.tls });
  if (refusal) throw new CoworkError('denied', refusal);
}

/**
 * Builds the control API server from the `[control]` config section, or returns undefined when
 * `control.listen` is unset (the API is off by default). TLS files are read here, once.
 */
export function controlServerFromConfig(
  config: ControlConfig,
  deps: {
    api: ControllerApi;
    store: ControlStore;
    recorder?: SecurityRecorder;
    logger?: { warn(message: string): void };
    clock?: Clock;
  },
): ControlServer | undefined {
  if (!config.listen) return undefined;
  assertListenAllowed(config);
  let tls: { cert: Buffer; key: Buffer } | undefined;
  if (config.tls) {
    try {
      tls = { cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) };
    } catch (err) {
      throw CoworkError.from(
        err,
        'invalidArgument',
        `cannot read control.tls cert/key (${config.tls.cert}, ${config.tls.key})`,
      );
    }
  }
  return new ControlServer({
    ...deps,
    listen: parseListen(config.listen),
    allowRemote: config.allowRemote,
    maxFrameBytes: config.maxFrameBytes,
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    requestsPerMinute: config.requestsPerMinute,
    allowedOrigins: config.allowedOrigins,
    ...(tls ? { tls } : {}),
  });
}
