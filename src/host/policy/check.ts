import type { ResolvedConfig } from '../config/index.js';
import { defaultConfig } from '../config/index.js';
import { protectedPathsFor } from '../workspace/index.js';
import { createPolicyEngine, type PolicyRulesConfig } from './engine.js';
import type { Decision, PolicyContextName, PolicyRequest } from './types.js';

export interface CheckPolicyOptions {
  /** A shell command line, or a full request (tool calls). */
  request: PolicyRequest | string;
  context?: PolicyContextName;
  /** Loaded config (loadConfig().config); defaults when absent. */
  config?: ResolvedConfig | PolicyRulesConfig;
  workspace: string;
  approvedForTask?: ReadonlySet<string>;
}

/** `cowork-vm policy check`: the decision for one request, without running anything. Exit 0/1/2 = allow/ask/deny. */
export function checkPolicy(opts: CheckPolicyOptions): Decision {
  const config = opts.config ?? defaultConfig();
  // The same protected paths the running sandbox uses ([workspace] protect, case folding).
  const protectedPaths =
    'workspace' in config && config.workspace
      ? protectedPathsFor(opts.workspace, config.workspace)
      : undefined;
  const engine = createPolicyEngine(config, { protectedPaths });
  const request: PolicyRequest =
    typeof opts.request === 'string' ? { kind: 'shell', command: opts.request } : opts.request;
  return engine.evaluate(request, {
    context: opts.context ?? 'agent',
    workspace: opts.workspace,
    ...(opts.approvedForTask ? { approvedForTask: opts.approvedForTask } : {}),
  });
}

export const DECISION_EXIT_CODES = { allow: 0, ask: 1, deny: 2 } as const;
