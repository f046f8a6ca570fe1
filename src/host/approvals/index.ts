export { MemoryApprovalBroker, type MemoryApprovalBrokerOptions } from './broker.js';
export { RESTART_DENIAL_MESSAGE, reconcileAfterRestart } from './reconcile.js';
export {
  approvalRequestSchema,
  DEFAULT_APPROVAL_TIMEOUT_MS,
  MAX_TIMEOUT_MS,
  verdictSchema,
} from './schemas.js';
export {
  type Answer,
  attachTerminalPrompt,
  parseAnswer,
  promptApproval,
  renderApproval,
} from './terminal.js';
export type {
  ApprovalBroker,
  ApprovalOutcome,
  ApprovalRequest,
  PendingApproval,
  Verdict,
  VerdictKind,
} from './types.js';
