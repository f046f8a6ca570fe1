import { AgentTaskRunner } from '../agent/index.js';
import { GuestBrowser } from '../browser/guest-browser.js';
import type { ResolvedConfig } from '../config/index.js';
import { decideEgress, type EgressProxy } from '../egress/index.js';
import { KeychainSecretStore } from '../secrets/index.js';
import type { Timeline } from '../timeline/index.js';
import { BROWSER_TOOLS } from '../tools/browser.js';
import { defaultTools, type ToolGate } from '../tools/index.js';
import type { Sandbox } from './sandbox.js';

export interface TaskRunnerDeps {
  config: ResolvedConfig;
  sandbox: Sandbox;
  workspace: string;
  timeline: Timeline;
  egress: EgressProxy;
  /** Guest address of the egress proxy, for Chromium's --proxy-server. */
  proxyUrl: string;
  env: NodeJS.ProcessEnv;
}

/**
 * The agent task runner of one controller: the tool set (browser tools when the image has
 * Chromium), the task's own browser (per-task profile, closed when the task ends), the egress
 * proxy's "approved for this task" scope, and the budgets from config.
 */
export function createTaskRunner(deps: TaskRunnerDeps): AgentTaskRunner {
  const { config, sandbox, timeline, egress, env } = deps;
  const g = config.guardrails;
  const withBrowser = sandbox.info.image === 'browser';
  const rules = { allow: config.egress.allow, deny: config.egress.deny, ask: config.egress.ask };
  let runner: AgentTaskRunner;

  const extendContext = (base: ToolGate): ToolGate => {
    egress.setTask(base.taskId);
    let browser: Promise<GuestBrowser> | undefined;
    void runner.wait(base.taskId).finally(() => {
      egress.endTask(base.taskId);
      void browser?.then((b) => b.close()).catch(() => {});
    });
    if (!withBrowser) return base;
    const ctx: ToolGate = { ...base };
    ctx.browser = {
      browser: () => {
        browser ??= GuestBrowser.launch({
          session: sandbox.session,
          proxyUrl: deps.proxyUrl,
          profile: base.taskId,
          signal: base.signal,
        });
        return browser;
      },
      checkUrl: (url) => {
        let u: URL;
        try {
          u = new URL(url);
        } catch {
          return { allowed: false, reason: `${url} is not a valid URL` };
        }
        const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
        const d = decideEgress(
          u.hostname.replace(/^\[|\]$/g, ''),
          port,
          rules,
          egress.approvedHosts(base.taskId),
        );
        // 'ask' passes here: the proxy asks the user when the request is actually made.
        return d.effect === 'deny' ? { allowed: false, reason: d.reason } : { allowed: true };
      },
    };
    return ctx;
  };

  runner = new AgentTaskRunner({
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
    tools: withBrowser ? [...defaultTools(), ...BROWSER_TOOLS] : defaultTools(),
    extendContext,
  });
  return runner;
}
