import { CoworkError } from '../errors.js';

/**
 * The proxy's wire limits. Every client connection and every upstream socket is bounded in time
 * and the number of client connections is capped, so a slow, idle or flooding guest costs a
 * bounded amount of memory and sockets, never the host.
 */
export interface ProxyLimits {
  /** A request's header block must arrive within this (slowloris; an idle new connection too). */
  headersTimeoutMs: number;
  /** A kept-alive client connection with nothing in flight is closed after this. */
  idleTimeoutMs: number;
  /** An upstream must accept the TCP connection within this (CONNECT, plain HTTP, upgrades). */
  connectTimeoutMs: number;
  /** A tunnel (CONNECT or upgrade) or an upstream response with no traffic either way is closed after this. */
  tunnelIdleTimeoutMs: number;
  /** Open client connections (tunnels included); the next one gets a 503. */
  maxConnections: number;
  /** Largest request header block accepted (431 beyond it). */
  maxHeaderBytes: number;
}

export const DEFAULT_LIMITS: Readonly<ProxyLimits> = {
  headersTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  connectTimeoutMs: 10_000,
  tunnelIdleTimeoutMs: 300_000,
  maxConnections: 256,
  maxHeaderBytes: 16 * 1024,
};

/** Allowed range of each limit; tests use short timeouts, so the lower bounds are small. */
export const LIMIT_RANGES: Readonly<Record<keyof ProxyLimits, readonly [number, number]>> = {
  headersTimeoutMs: [50, 600_000],
  idleTimeoutMs: [50, 3_600_000],
  connectTimeoutMs: [50, 600_000],
  tunnelIdleTimeoutMs: [50, 86_400_000],
  maxConnections: [1, 65_536],
  maxHeaderBytes: [1024, 1024 * 1024],
};

/** Fills defaults and refuses a value outside its range, naming the option, the value and the range. */
export function resolveLimits(input: Partial<ProxyLimits> = {}): ProxyLimits {
  const out = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(LIMIT_RANGES) as (keyof ProxyLimits)[]) {
    const value = input[key];
    if (value === undefined) continue;
    const [min, max] = LIMIT_RANGES[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw new CoworkError(
        'invalidArgument',
        `egress proxy option ${key} = ${typeof value === 'number' ? String(value) : JSON.stringify(value)} is out of range: it must be an integer from ${min} to ${max}`,
      );
    }
    out[key] = value;
  }
  return out;
}
