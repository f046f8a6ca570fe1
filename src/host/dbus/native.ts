import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';

/*
 * The part of @homebridge/dbus-native this folder uses, typed here because the package ships
 * no types for it: the authenticated transport (`createConnection`, which does the SASL
 * handshake and frames messages) and the message constants. Method dispatch, replies, property
 * access and introspection are ours (connection.ts), so a malformed call from another peer is
 * answered with an error instead of reaching the library's own handlers, which can throw from
 * inside its socket listener.
 */

/** A message as the library marshals and unmarshals it. Variants are `[signature, value]` out, `[signatureTree, [value]]` in. */
export interface RawMessage {
  type: number;
  serial?: number;
  flags?: number;
  path?: string;
  interface?: string;
  member?: string;
  errorName?: string;
  replySerial?: number;
  destination?: string;
  sender?: string;
  signature?: string;
  body?: unknown[];
}

export interface RawConnection {
  on(event: 'connect', listener: () => void): this;
  on(event: 'message', listener: (msg: RawMessage) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'end', listener: () => void): this;
  message(msg: RawMessage): void;
  end(): void;
  stream: Duplex & { destroy(): void };
}

interface DbusNativeModule {
  createConnection(opts: { stream: Duplex; authMethods?: string[] }): RawConnection;
}

export const MESSAGE_TYPE = { methodCall: 1, methodReturn: 2, error: 3, signal: 4 } as const;
export const FLAGS = { noReplyExpected: 1, noAutoStart: 2 } as const;

let loaded: DbusNativeModule | undefined;

export function dbusNative(): DbusNativeModule {
  loaded ??= createRequire(import.meta.url)('@homebridge/dbus-native') as DbusNativeModule;
  return loaded;
}
