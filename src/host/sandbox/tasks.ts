import { AgentTaskRunner } from '../agent/index.js';
import { GuestBrowser } from '../browser/guest-browser.js';
import type { TaskCheckpoints } from '../checkpoints/index.js';
import type { ResolvedConfig } from '../config/index.js';
import { decideEgress } from '../egress/index.js';
import { KeychainSecretStore } from '../secrets/index.js';
import type { Timeline } from '../timeline/index.js';
import { BROWSER_TOOLS } from '../tools/browser.js';
import { type AnyTool, defaultTools, type ToolGate } from '../tools/index.js';
import type { Sandbox } from './sandbox.js';
import type { TaskScopes } from './task-scope.js';

export interface TaskRunnerDeps {
  config: ResolvedConfig;
  sandbox: Sandbox;
  workspace: string;
  timeline: Timeline;
  /** Guest address of the egress proxy, for Chromium's --proxy-server. */
  proxyUrl: string;
  env: NodeJS.ProcessEnv;
  /** Each task's scope (approvals, egress grants, proxy credentials), shared with the Controller. */
  scopes: TaskScopes;
}

/** What every task-like user of the tools shares: the tool set, the per-task gate extension and its end. */
export interface TaskToolSetup {
  tools: AnyTool[];
  /** Opens the task's scope and adds the task's browser (with the browser image). */
  extendContext: (base: ToolGate) => ToolGate;
  /** Closes the task's scope and browser. */
  onTaskEnd: (taskId: string) => void;
}

/**
 * The tool set of one controller (browser tools when the image has Chromium), the task's own
 * browser (per-task profile, closed when the task ends) and the task's scope (opened as the
 * task starts, disposed when it ends). Agent tasks and outside agents' tool sessions (MCP)
 * share it, so both get the same tools under the same scopes.
 */
export function taskToolSetup(deps: TaskRunnerDeps): TaskToolSetup {
  const { config, sandbox, scopes } = deps;
  const withBrowser = sandbox.info.image === 'browser';
  const rules = {
    allow: config.egress.allow,
    deny: config.egress.deny,
    ask: config.egress.ask,
    allowAll: config.egress.allowAll,
  };
  const browsers = new Map<string, Promise<GuestBrowser>>();

  const onTaskEnd = (taskId: string): void => {
    scopes.close(taskId);
    const browser = browsers.get(taskId);
    browsers.delete(taskId);
    void browser?.then((b) => b.close()).catch(() => {});
  };

  const extendContext = (base: ToolGate): ToolGate => {
    const scope = scopes.open(base.taskId);
    if (!withBrowser) return base;
    const ctx: ToolGate = { ...base };
    ctx.browser = {
      browser: () => {
        let browser = browsers.get(base.taskId);
        if (!browser) {
          // Chromium takes no credentials in --proxy-server, so its traffic is no task's until
          // the browser answers the proxy's credentials itself: sandbox-level rules only.
          browser = GuestBrowser.launch({
            session: sandbox.session,
            proxyUrl: deps.proxyUrl,
            profile: base.taskId,
            signal: base.signal,
          });
          browsers.set(base.taskId, browser);
        }
        return browser;
      },
      checkUrl: (url) => {
        let u: URL;
        try {
          u = new URL(url);
        } catch {
          return { allowed: false, reason: `${url} is not a valid URL` };
        }
        const kind = u.protocol === 'https:' ? 'connect' : 'http';
        const port = Number(u.port || (kind === 'connect' ? 443 : 80));
        const host = u.hostname.replace(/^\[|\]$/g, '');
        const d = decideEgress({ host, port, kind }, rules, scope.egressHosts);
        // 'ask' passes here: the proxy asks the user when the request is actually made.
        return d.effect === 'deny' ? { allowed: false, reason: d.reason } : { allowed: true };
      },
    };
    return ctx;
  };

  const tools = withBrowser ? [...defaultTools(), ...BROWSER_TOOLS] : defaultTools();
  return { tools, extendContext, onTaskEnd };
}

/** The agent task runner of one controller: the shared tool setup, and the budgets from config. */
export function createTaskRunner(
  deps: TaskRunnerDeps & { checkpoints?: TaskCheckpoints },
  setup = taskToolSetup(deps),
): AgentTaskRunner {
  const { config, timeline, env } = deps;
  const g = config.guardrails;
  return new AgentTaskRunner({
    timeline,
    secrets: new KeychainSecretStore(),
    limits: {
      maxTokens: g.maxTokensPerTask,
      maxCostUsd: g.maxCostPerTask,
      maxIterations: g.maxIterationsPerTask,
      maxFileSizeMB: g.maxFileSizeMB,
    },
    model: config.agent.model,
    maxOutputTokens: config.agent.maxOutputTokens,
    pricing: config.pricing,
    ...(env.ANTHROPIC_BASE_URL ? { baseURL: env.ANTHROPIC_BASE_URL } : {}),
    env,
    tools: setup.tools,
    extendContext: setup.extendContext,
    onTaskEnd: setup.onTaskEnd,
    ...(deps.checkpoints ? { checkpoints: deps.checkpoints } : {}),
  });
}
