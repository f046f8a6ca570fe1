export {
  type EgressTaskGrants,
  type ProxyCredential,
  proxyEnvFor,
  TaskAttribution,
} from './attribution.js';
export { benchEgress } from './bench.js';
export { CredentialGate, hostRoots } from './credential-gate.js';
export {
  type CredentialCheck,
  type CredentialRule,
  type CredentialRuleInput,
  checkCredentialedRequest,
  compileCredentialRule,
  DEFAULT_REFUSED_HEADERS,
  pathMatches,
  resolveCredentials,
} from './credentials.js';
export { denyMessage } from './deny-message.js';
export {
  type EgressEvent,
  EgressEventSchema,
  type EgressTimelineSink,
  type TimelineEgressEvent,
  toTimelineEvent,
} from './events.js';
export { type BodyFraming, checkRequestFraming, type FramingCheck } from './framing.js';
export { type EgressConfigSection, egressOptionsFromConfig } from './from-config.js';
export { type NormalizedHost, normalizeHost, parseConnectAuthority } from './host.js';
export {
  blockedAddressReason,
  denyAddresses,
  embeddedIPv4,
  parseIPv4Loose,
  parseIPv6,
  parseIp,
  ruleAddress,
} from './ip-address.js';
export { DEFAULT_LIMITS, LIMIT_RANGES, type ProxyLimits, resolveLimits } from './limits.js';
export { type Admission, EgressProxy, type EgressProxyOptions } from './proxy.js';
export { isListedPublicSuffix, wildcardCoversPublicSuffix } from './public-suffix.js';
export {
  checkTarget,
  compileTestResolve,
  dialForm,
  type LookupFn,
  type ResolvedAddress,
  systemLookup,
} from './resolve.js';
export {
  compileRules,
  decideEgress,
  type EgressAsk,
  type EgressDecision,
  type EgressKind,
  type EgressRule,
  type EgressRules,
  type EgressRulesInput,
  EgressRulesSchema,
  grantKey,
  parseRule,
  STANDARD_PORT,
} from './rules.js';
export { type Dialer, defaultDialer } from './runtime.js';
export { SandboxCA } from './sandbox-ca.js';
