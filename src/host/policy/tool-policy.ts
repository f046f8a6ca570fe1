import { checkPath } from './path-guard.js';
import { type Rule, ruleMatchesPath, ruleMatchesTool } from './rules.js';
import type { Effect, LayerName, PolicyContext, PolicyRequest, Risk } from './types.js';
import type { Verdict } from './verdicts.js';

/**
 * Votes for non-shell tool calls: the path guard (guardrails), Read/Write/Edit and tool-name
 * rules (user, workspace), system tools from remote channels (context), egress lists for network
 * tools and risk defaults (tool).
 */
export type ToolRequest = Extract<PolicyRequest, { kind: 'tool' }>;

export interface ToolRuleSet {
  user: { allow: Rule[]; ask: Rule[]; deny: Rule[] };
  workspace: { ask: Rule[]; deny: Rule[] };
  egress: { allow: string[]; deny: string[] };
}

/** `example.com` matches itself; `*.example.com` matches its subdomains (not itself). Port ignored. */
export function hostMatches(host: string, pattern: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  const p = pattern.toLowerCase().replace(/:\d+$/, '');
  return p.startsWith('*.') ? h.endsWith(p.slice(1)) && h.length > p.length - 1 : h === p;
}

function urlHost(input: unknown): string | undefined {
  const url = input && typeof input === 'object' ? (input as { url?: unknown }).url : undefined;
  if (typeof url !== 'string') return undefined;
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.hostname.replace(/^\[|\]$/g, '') : undefined;
  } catch {
    return undefined;
  }
}

export function toolVerdicts(req: ToolRequest, ctx: PolicyContext, rules: ToolRuleSet): Verdict[] {
  const v: Verdict[] = [];
  const paths: { relative: string; access: 'read' | 'write' | 'edit' }[] = [];
  for (const p of req.paths ?? []) {
    const c = checkPath(ctx.workspace, p.path, p.access);
    if (!c.ok)
      v.push({ layer: 'guardrails', effect: 'deny', reason: `path ${c.reason}`, rule: 'path-guard' });
    else paths.push({ relative: c.relative, access: p.access });
  }
  const votes = (layer: LayerName, rules: Rule[], effect: Effect) => {
    for (const r of rules) {
      if (ruleMatchesTool(r, req.tool))
        v.push({
          layer,
          effect,
          reason: `the tool ${req.tool} matches the ${layer} ${effect} rule ${r.source}`,
          rule: r.source,
        });
      for (const p of paths)
        if (ruleMatchesPath(r, p.relative, p.access))
          v.push({
            layer,
            effect,
            reason: `${p.access} of ${p.relative || '.'} matches the ${layer} ${effect} rule ${r.source}`,
            rule: r.source,
          });
    }
  };
  votes('user', rules.user.deny, 'deny');
  votes('user', rules.user.ask, 'ask');
  votes('workspace', rules.workspace.deny, 'deny');
  votes('workspace', rules.workspace.ask, 'ask');
  if (ctx.context === 'gateway' && req.risk === 'system')
    v.push({
      layer: 'context',
      effect: 'deny',
      reason: `${req.tool} is a system tool, which remote channels may never use`,
      rule: 'gateway-system',
    });
  const netDeny = networkVerdict(req, rules.egress);
  if (netDeny?.effect === 'deny') v.push(netDeny);
  if (ctx.context === 'local') {
    v.push({
      layer: 'context',
      effect: 'allow',
      reason: 'tools used at this machine are allowed unless denied',
    });
    return v;
  }
  const byName = rules.user.allow.find((r) => ruleMatchesTool(r, req.tool));
  const pathRules = paths.map((p) => rules.user.allow.find((r) => ruleMatchesPath(r, p.relative, p.access)));
  if (byName)
    v.push({
      layer: 'user',
      effect: 'allow',
      reason: `the tool ${req.tool} is allowed by ${byName.source}`,
      rule: byName.source,
    });
  else if (paths.length > 0 && pathRules.every(Boolean)) {
    const rules = [...new Set(pathRules.map((r) => (r as Rule).source))];
    v.push({
      layer: 'user',
      effect: 'allow',
      reason: `every path is allowed by ${rules.join(', ')}`,
      rule: rules.join(', '),
    });
  } else {
    const net = networkVerdict(req, rules.egress);
    v.push(
      net?.effect === 'allow' && ctx.context === 'agent'
        ? net
        : riskDefault(req.risk, ctx.context, req.tool, paths.length),
    );
  }

  return v;
}

/** Agent network tools: a URL on an egress-allowed host is allowed, on a denied host denied (the proxy enforces too). */
function networkVerdict(req: ToolRequest, egress: { allow: string[]; deny: string[] }): Verdict | undefined {
  if (req.risk !== 'network') return undefined;
  const host = urlHost(req.input);
  if (host === undefined) return undefined;
  const denied = egress.deny.find((p) => hostMatches(host, p));
  if (denied)
    return {
      layer: 'tool',
      effect: 'deny',
      reason: `${host} is on the egress deny list (${denied})`,
      rule: `egress.deny:${denied}`,
    };
  const allowed = egress.allow.find((p) => hostMatches(host, p));
  if (allowed)
    return {
      layer: 'tool',
      effect: 'allow',
      reason: `${host} is on the egress allow list (${allowed})`,
      rule: `egress.allow:${allowed}`,
    };
  return undefined;
}

/** Tool-layer defaults by risk for agent and gateway (local is allowed above). */
function riskDefault(
  risk: Risk,
  context: 'agent' | 'gateway' | 'local',
  tool: string,
  pathCount: number,
): Verdict {
  const allow = (reason: string): Verdict => ({ layer: 'tool', effect: 'allow', reason });
  const ask = (reason: string): Verdict => ({ layer: 'tool', effect: 'ask', reason });
  switch (risk) {
    case 'read':
      return allow(`${tool} only reads`);
    case 'write':
      if (context === 'gateway')
        return ask(`${tool} writes files and the request came from a remote channel`);
      return pathCount > 0
        ? allow(`${tool} writes only inside the workspace`)
        : ask(`${tool} writes but names no workspace path`);
    case 'destructive':
      return ask(`${tool} is destructive`);
    case 'network':
      return ask(`${tool} uses the network`);
    default:
      return ask(`${tool} acts on the host system`);
  }
}
