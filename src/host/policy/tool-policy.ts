import { realpathSync } from 'node:fs';
import { ProtectedPaths } from '../workspace/index.js';
import { globToRegExp } from './glob.js';
import { checkPath, hostFoldsCase, type PathCheck } from './path-guard.js';
import { type Rule, ruleMatchesTool } from './rules.js';
import type { Decision, Effect, LayerName, PolicyContext, PolicyRequest, Risk } from './types.js';
import { combine, type Verdict } from './verdicts.js';
import { hardLinkNames, withheldEntries } from './workspace-scan.js';

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
  /** What the host executes or trusts: never written by a tool, in any context. Default new ProtectedPaths(). */
  protect?: ProtectedPaths;
  /** Force case folding of rules and protected paths; default: detected from the workspace's filesystem. */
  caseInsensitive?: boolean;
  /** How many workspace entries a hard-link check may visit before it gives up (and asks). */
  scanLimit?: number;
}

const DEFAULT_SCAN_LIMIT = 200_000;
const compiled = new WeakMap<Rule, { plain: RegExp; folded: RegExp }>();

/**
 * A path rule's matcher. Globs keep their gitignore-like meaning, with one addition: a pattern
 * whose first component is a dot-directory (`.git/**`, `.vscode/*.json`) matches that directory
 * at any depth (`sub/.git/config`), because nested repositories and folders are as dangerous as
 * the root's. Anchor with a leading `/` to mean the root's only.
 */
function pathRuleRe(rule: Extract<Rule, { kind: 'path' }>, fold: boolean): RegExp {
  let c = compiled.get(rule);
  if (!c) {
    const g = rule.glob;
    const dotDir = /^\.[^/.][^/]*\//.test(g) || /^\.\.[^/]+\//.test(g);
    const plain = globToRegExp(dotDir ? `**/${g}` : g);
    c = { plain, folded: new RegExp(plain.source, 'i') };
    compiled.set(rule, c);
  }
  return fold ? c.folded : c.plain;
}

function pathRuleHits(rule: Rule, rel: string, access: 'read' | 'write' | 'edit', fold: boolean): boolean {
  if (rule.kind !== 'path') return false;
  const kindOk = rule.access === 'read' ? access === 'read' : access !== 'read';
  return kindOk && pathRuleRe(rule, fold).test(rel);
}

/** A workspace-relative name a checked path is also known by, and how. */
interface Spelling {
  rel: string;
  via: 'path' | 'link' | 'hard link';
}

function describeSpelling(s: Spelling, resolved: string): string {
  if (s.via === 'hard link') return `${resolved || '.'} (a hard link to ${s.rel})`;
  if (s.rel === resolved) return s.rel || '.';
  return `${resolved || '.'} (reached as ${s.rel})`;
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
  const fold = rules.caseInsensitive ?? foldsCase(ctx.workspace);
  const base = rules.protect ?? DEFAULT_PROTECTED;
  const protect =
    fold && !base.caseInsensitive
      ? new ProtectedPaths({ patterns: base.patterns, caseInsensitive: true })
      : base;
  const paths: { relative: string; access: 'read' | 'write' | 'edit'; names: Spelling[] }[] = [];
  for (const p of req.paths ?? []) {
    const c = checkPath(ctx.workspace, p.path, p.access, { caseInsensitive: fold });
    if (!c.ok) {
      v.push({ layer: 'guardrails', effect: 'deny', reason: `path ${c.reason}`, rule: 'path-guard' });
      continue;
    }
    const names: Spelling[] = c.spellings.map((rel) => ({ rel, via: 'path' }));
    for (const n of names) if (n.rel !== c.relative) n.via = 'link';
    v.push(...hardLinkVerdicts(c, p.access, names, ctx, rules, protect, fold));
    paths.push({ relative: c.relative, access: p.access, names });
  }
  for (const p of paths) {
    if (p.access === 'read') continue;
    for (const n of p.names) {
      const why = protect.reason(n.rel);
      if (!why) continue;
      v.push({
        layer: 'guardrails',
        effect: 'deny',
        reason:
          `${p.access} of ${describeSpelling(n, p.relative)} is refused: ${why}. Protected paths are what the host ` +
          'executes or trusts; no tool may write them in any context and no approval can lift this — ' +
          "only the user's config ([workspace] protect) can change the list (git metadata is always protected)",
        rule: 'protected-path',
      });
      break;
    }
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
      for (const p of paths) {
        const n = p.names.find((n) => pathRuleHits(r, n.rel, p.access, fold));
        if (n)
          v.push({
            layer,
            effect,
            reason: `${p.access} of ${describeSpelling(n, p.relative)} matches the ${layer} ${effect} rule ${r.source}`,
            rule: r.source,
          });
      }
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
  const pathRules = paths.map((p) =>
    rules.user.allow.find((r) => pathRuleHits(r, p.relative, p.access, fold)),
  );
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

const DEFAULT_PROTECTED = new ProtectedPaths();

function foldsCase(workspace: string): boolean {
  try {
    return hostFoldsCase(realpathSync(workspace));
  } catch {
    return false;
  }
}

/**
 * A regular file with more than one name is as sensitive as its most sensitive name: find its
 * other names in the workspace among those a deny/ask rule or the protected list selects, and add
 * them to the names the rules are checked on. When that cannot be established (too many
 * entries, unreadable folder), agent and gateway calls ask.
 */
function hardLinkVerdicts(
  c: PathCheck,
  access: 'read' | 'write' | 'edit',
  names: Spelling[],
  ctx: PolicyContext,
  rules: ToolRuleSet,
  protect: ProtectedPaths,
  fold: boolean,
): Verdict[] {
  if (!c.file || c.file.nlink < 2) return [];
  const ruleList = [...rules.user.deny, ...rules.user.ask, ...rules.workspace.deny, ...rules.workspace.ask];
  if (access === 'read' && !ruleList.some((r) => r.kind === 'path' && r.access === 'read')) return [];
  const interesting = (rel: string) =>
    ruleList.some((r) => pathRuleHits(r, rel, access, fold)) ||
    (access !== 'read' && protect.isProtected(rel));
  const found = hardLinkNames(
    ctx.workspace,
    c.file,
    c.relative,
    interesting,
    rules.scanLimit ?? DEFAULT_SCAN_LIMIT,
  );
  for (const rel of found.names) names.push({ rel, via: 'hard link' });
  if (found.complete || ctx.context === 'local') return [];
  return [
    {
      layer: 'guardrails',
      effect: 'ask',
      reason: `${c.relative} has ${c.file.nlink} hard links and the workspace is too large (or unreadable) to check that none of them is a denied or protected file`,
      rule: 'hard-link-unverified',
    },
  ];
}

/**
 * The decision for a tool call, with the entries a scoped path (list: 'entries', search: 'tree')
 * must leave out because Read deny/ask rules match them (the tool cannot ask per file, and must
 * not show content or even whether a denied file matched a search).
 */
export function toolDecision(req: ToolRequest, ctx: PolicyContext, rules: ToolRuleSet): Decision {
  const v = toolVerdicts(req, ctx, rules);
  const scoped = (req.paths ?? []).filter((p) => p.scope && p.access === 'read');
  const withheld: string[] = [];
  for (const p of scoped) {
    const r = scopeWithheld(p.path, p.scope as 'entries' | 'tree', ctx, rules);
    if (r === 'incomplete')
      v.push({
        layer: 'guardrails',
        effect: 'ask',
        reason: `${p.path} holds more than ${rules.scanLimit ?? DEFAULT_SCAN_LIMIT} entries (or unreadable folders), too many to check against the Read rules one by one — narrow the path`,
        rule: 'read-scope-unverified',
      });
    else withheld.push(...r);
  }
  const d = combine(v);
  if (scoped.length > 0) d.withheld = withheld;
  return d;
}

function scopeWithheld(
  path: string,
  scope: 'entries' | 'tree',
  ctx: PolicyContext,
  rules: ToolRuleSet,
): string[] | 'incomplete' {
  const readRules = [
    ...rules.user.deny,
    ...rules.user.ask,
    ...rules.workspace.deny,
    ...rules.workspace.ask,
  ].filter((r) => r.kind === 'path' && r.access === 'read');
  if (readRules.length === 0) return [];
  const fold = rules.caseInsensitive ?? foldsCase(ctx.workspace);
  const c = checkPath(ctx.workspace, path, 'read', { caseInsensitive: fold });
  if (!c.ok || !c.directory) return [];
  const hits = (rel: string) => readRules.some((r) => pathRuleHits(r, rel, 'read', fold));
  return withheldEntries(c, scope, hits, rules.scanLimit ?? DEFAULT_SCAN_LIMIT);
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
