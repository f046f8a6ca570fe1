/**
 * The one contract of every frontend (local socket, WebSocket API, channels, and the dashboard,
 * menubar and MCP server to come): the method table, its bindings onto the ControllerApi, and
 * a typed client. Transports live in ../control/ and ../channels/ and only frame these.
 */
export {
  CALLS,
  type CallContext,
  type Caller,
  type CallName,
  invoke,
  narrowContext,
  offered,
  parseParams,
  SUBSCRIPTIONS,
} from './bindings.js';
export { ApiClient, type CallOptions, type RawCaller, type RawCallOptions } from './client.js';
export {
  CONTEXT_RULES,
  type ContextRule,
  type EventOf,
  isMethodName,
  type LocalMethodName,
  METHOD_NAMES,
  METHODS,
  type MethodName,
  type MethodOf,
  type MethodSpec,
  methodsOf,
  type OwnerParamsOf,
  type ParamsOf,
  type ParsedParamsOf,
  type RemoteMethodName,
  type ResultOf,
  TRANSPORTS,
  type Transport,
} from './contract.js';
export type {
  ControllerApi,
  ExecOutcome,
  ExecRequest,
  ExecStreams,
  Origin,
  StatusInfo,
  TaskLimits,
  TaskLiveEvent,
  TaskStartRequest,
  TaskSummary,
} from './controller.js';
export { PARAM_LIMITS, tighterLimits } from './limits.js';
export { ROLE_RANK, ROLES, type Role, roleAllows } from './roles.js';
