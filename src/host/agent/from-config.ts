import type { CoworkConfig } from '../config/index.js';
import { KeychainSecretStore } from '../secrets/keychain-store.js';
import type { SecretStore } from '../secrets/types.js';
import type { Timeline } from '../timeline/index.js';
import { AgentTaskRunner, type AgentTaskRunnerOptions } from './task-runner.js';

/**
 * The controller's agent task runner, configured from config.toml: guardrail limits, model,
 * output cap and pricing overrides. `ANTHROPIC_BASE_URL` (read by the SDK) points it at another
 * Messages API endpoint, e.g. the tests' local stand-in. Attach the controller afterwards:
 *
 *   const tasks = agentTaskRunnerFromConfig({ config, timeline });
 *   const controller = new Controller({ ..., tasks });
 *   tasks.attach(controller);
 */
export function agentTaskRunnerFromConfig(opts: {
  config: CoworkConfig;
  timeline: Timeline;
  secrets?: SecretStore;
  env?: NodeJS.ProcessEnv;
  onEvent?: AgentTaskRunnerOptions['onEvent'];
}): AgentTaskRunner {
  const g = opts.config.guardrails;
  const env = opts.env ?? process.env;
  return new AgentTaskRunner({
    timeline: opts.timeline,
    secrets: opts.secrets ?? new KeychainSecretStore(),
    limits: {
      maxTokens: g.maxTokensPerTask,
      maxCostUsd: g.maxCostPerTask,
      maxIterations: g.maxIterationsPerTask,
      maxFileSizeMB: g.maxFileSizeMB,
    },
    model: opts.config.agent.model,
    maxOutputTokens: opts.config.agent.maxOutputTokens,
    pricing: opts.config.pricing,
    ...(env.ANTHROPIC_BASE_URL ? { baseURL: env.ANTHROPIC_BASE_URL } : {}),
    env,
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
  });
}
