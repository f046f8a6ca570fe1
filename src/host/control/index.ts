export type {
  ControllerApi,
  ExecOutcome,
  ExecRequest,
  Origin,
  StatusInfo,
  TaskSummary,
} from '../api/controller.js';
export { AUTH_LOCKOUT, AUTH_TIMEOUT_MS, computeAuthHmac, verifyAuthHmac } from './auth.js';
export {
  type CloseInfo,
  ControlClient,
  type ControlClientOptions,
  type DeviceCredentials,
  loadCredentials,
  saveCredentials,
} from './client.js';
export { displaySafeName, MAX_DEVICE_NAME_CHARS, sanitizeDeviceName } from './device-name.js';
export { createPairingCode, listDevices, revokeDevice } from './devices.js';
export {
  type Clock,
  type SecurityEvent,
  type SecurityRecorder,
  securityEventSchema,
  systemClock,
} from './events.js';
export { assertListenAllowed, controlServerFromConfig, parseListen } from './from-config.js';
export { type LockoutPolicy, LockoutTable } from './lockouts.js';
export { METHOD_NAMES, METHODS, type MethodName, prepareCall, ROLE_RANK, roleAllows } from './methods.js';
export { isLoopbackHost, originAllowed } from './net.js';
export { CLOSE_CODES, PAIRING_ALPHABET, ROLES, type Role } from './protocol.js';
export {
  ControlServer,
  type ControlServerOptions,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_REQUESTS_PER_MINUTE,
  UNAUTHENTICATED_LIMITS,
} from './server.js';
export { AUTH_FAILED_MESSAGE } from './session.js';
export {
  ControlStore,
  type ControlStoreOptions,
  type DeviceRecord,
  defaultControlStorePath,
  PAIR_BUDGET,
  PAIR_LOCKOUT,
  PAIRING_CODE_TTL_MS,
} from './store.js';
