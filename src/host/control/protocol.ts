import { z } from 'zod';
import { roleSchema } from '../api/contract.js';
import { ERROR_CODES } from '../errors.js';

/**
 * The WebSocket control API's wire format. Every frame in either direction is one JSON text
 * message validated by a strict schema below; anything else is a protocol error. See
 * docs/control-api.md for the handshake and the close codes.
 */

export const PROTOCOL_VERSION = 1;

/** Close codes the server uses (4000-4999 is the application range of RFC 6455). */
export const CLOSE_CODES = {
  /** Authentication failed: wrong HMAC, unknown/revoked device at auth time, replayed or late answer, or no answer in time. */
  authFailed: 4001,
  /** The Origin header names a site that is not allowed. */
  forbiddenOrigin: 4003,
  /** Too many protocol errors on this connection (malformed, unknown method, oversized, before auth). */
  protocolAbuse: 4008,
  /** This address or pairing identity is locked out after repeated failures, or rate limited. */
  lockedOut: 4009,
  /** The device was revoked while connected. */
  deviceRevoked: 4010,
  /** The server has too many open connections (standard "Try Again Later"). */
  tryAgainLater: 1013,
  /** The server is shutting down. */
  shuttingDown: 1001,
} as const;

export { ROLES, type Role } from '../api/roles.js';
export { roleSchema };

export const errorBodySchema = z.strictObject({ code: z.enum(ERROR_CODES), message: z.string() });
export type ErrorBody = z.infer<typeof errorBodySchema>;

const requestId = z.string().min(1).max(64);
/** Pairing codes: 6 characters from an alphabet without I, O, 0, 1 (see store.ts). */
export const PAIRING_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
export const pairingCodeSchema = z
  .string()
  .transform((s) => s.trim().toUpperCase())
  .pipe(z.string().regex(/^[A-HJ-NP-Z2-9]{6}$/, 'a pairing code is 6 characters (A-Z without I and O, 2-9)'));

// ---- client → server ----------------------------------------------------------------------

export const authFrameSchema = z.strictObject({
  type: z.literal('auth'),
  deviceId: z.string().min(1).max(64),
  /** The nonce of the challenge being answered: it must be the one issued to this connection. */
  nonce: z.string().min(1).max(128),
  /** Lowercase hex HMAC-SHA256(deviceKey, nonce ‖ serverId). */
  hmac: z.string().regex(/^[0-9a-f]{64}$/),
});

export const pairFrameSchema = z.strictObject({
  type: z.literal('pair'),
  code: z.string().min(1).max(16),
  name: z.string().min(1).max(100),
});

export const reqFrameSchema = z.strictObject({
  type: z.literal('req'),
  id: requestId,
  method: z.string().min(1).max(64),
  params: z.unknown().optional(),
});

export const clientFrameSchema = z.discriminatedUnion('type', [
  authFrameSchema,
  pairFrameSchema,
  reqFrameSchema,
]);
export type AuthFrame = z.infer<typeof authFrameSchema>;
export type PairFrame = z.infer<typeof pairFrameSchema>;
export type ReqFrame = z.infer<typeof reqFrameSchema>;
export type ClientFrame = z.infer<typeof clientFrameSchema>;

// ---- server → client ----------------------------------------------------------------------

export const challengeFrameSchema = z.strictObject({
  type: z.literal('challenge'),
  version: z.literal(PROTOCOL_VERSION),
  nonce: z.string(),
  serverId: z.string(),
  /** How long the answer may take, from the moment the challenge was sent. */
  expiresInMs: z.number().int().positive(),
});

export const authOkFrameSchema = z.strictObject({
  type: z.literal('auth-ok'),
  deviceId: z.string(),
  name: z.string(),
  role: roleSchema,
});

export const pairedFrameSchema = z.strictObject({
  type: z.literal('paired'),
  deviceId: z.string(),
  /** base64url of 32 random bytes; sent exactly once, at pairing. */
  deviceKey: z.string(),
  role: roleSchema,
  serverId: z.string(),
});

/** A failure that is not an answer to a `req` (auth, pairing, unparseable frame). */
export const errorFrameSchema = z.strictObject({ type: z.literal('error'), error: errorBodySchema });

export const resFrameSchema = z.union([
  z.strictObject({ type: z.literal('res'), id: requestId, ok: z.literal(true), result: z.unknown() }),
  z.strictObject({
    type: z.literal('res'),
    id: requestId.nullable(),
    ok: z.literal(false),
    error: errorBodySchema,
  }),
]);

export const eventFrameSchema = z.strictObject({
  type: z.literal('event'),
  event: z.string(),
  data: z.unknown(),
});

export const serverFrameSchema = z.union([
  challengeFrameSchema,
  authOkFrameSchema,
  pairedFrameSchema,
  errorFrameSchema,
  resFrameSchema,
  eventFrameSchema,
]);
export type ChallengeFrame = z.infer<typeof challengeFrameSchema>;
export type PairedFrame = z.infer<typeof pairedFrameSchema>;
export type ResFrame = z.infer<typeof resFrameSchema>;
export type EventFrame = z.infer<typeof eventFrameSchema>;
export type ServerFrame = z.infer<typeof serverFrameSchema>;
