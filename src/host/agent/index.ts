export { agentTaskRunnerFromConfig } from './from-config.js';
export { limitFromFigures } from './limits.js';
export { DEFAULT_MAX_TOKENS_PER_CALL, DEFAULT_MODEL, runAgentTask } from './loop.js';
export { callModel, DEFAULT_RETRY, KEY_REJECTED_MESSAGE, retryAfterMs, toModelUsage } from './model-call.js';
export { buildRequest } from './request.js';
export { systemPrompt } from './system-prompt.js';
export {
  AgentTaskRunner,
  type AgentTaskRunnerOptions,
  type EnforcementPath,
  enforcementGate,
} from './task-runner.js';
export type {
  AgentBudget,
  AgentEvent,
  AgentOutcome,
  AgentResult,
  AgentTimeline,
  ModelUsage,
  RetryPolicy,
  RunAgentTaskOptions,
} from './types.js';
