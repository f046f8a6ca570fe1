import { CoworkError } from '../errors.js';
import { ProtectedPaths } from '../workspace/index.js';
import { dangerousFindings, dedupe } from './dangerous.js';
import { parseRule, type Rule, ruleHitsCommand, shellPathHit } from './rules.js';
import { type CommandAnalysis, ShellAnalyzer } from './shell-analysis.js';
import { coverageVerdicts } from './shell-coverage.js';
import { ShellParser } from './shell-parser.js';
import { toolDecision } from './tool-policy.js';
import type { Decision, Effect, LayerName, PolicyContext, PolicyEngine, PolicyRequest } from './types.js';
import { combine, type Verdict } from './verdicts.js';
import { GUEST_WORKSPACE, guestAbsolute, workspaceRelativePath, writeTargets } from './write-targets.js';

export interface PolicyEngineOptions {
  /** What the host executes or trusts in the workspace; a shell write to it is denied in every context. */
  protectedPaths?: ProtectedPaths;
}

/** The rule part of the config the engine needs (a ResolvedConfig fits). */
export interface PolicyRulesConfig {
  policy?: { allow?: string[]; ask?: string[]; deny?: string[]; blockedPatterns?: string[] };
  /** Rules from the workspace's .cowork/config.toml: deny/ask/blockedPatterns only (no allow). */
  workspacePolicy?: { ask?: string[]; deny?: string[]; blockedPatterns?: string[] };
  /** Egress host lists: a network tool whose input names a URL on an allowed host needs no approval. */
  egress?: { allow?: string[]; deny?: string[] };
  /** Paths no tool may write ([workspace] protect); default new ProtectedPaths(). */
  protect?: ProtectedPaths;
  /** Force case-insensitive path rules; default: detected from the workspace's filesystem. */
  caseInsensitive?: boolean;
}

const CACHE_SIZE = 1024;

function parseRules(list: string[] | undefined, where: string): Rule[] {
  return (list ?? []).map((r) => {
    try {
      return parseRule(r);
    } catch (err) {
      throw new CoworkError('invalidArgument', `${where}: ${(err as Error).message}`, err);
    }
  });
}

function compile(patterns: string[] | undefined, where: string): { source: string; re: RegExp }[] {
  return (patterns ?? []).map((p) => {
    try {
      return { source: p, re: new RegExp(p) };
    } catch (err) {
      throw new CoworkError(
        'invalidArgument',
        `${where}: blockedPatterns entry ${JSON.stringify(p)} is not a valid regular expression`,
        err,
      );
    }
  });
}

/**
 * The one place a decision is made. Layers in fixed order — guardrails → user → workspace →
 * context → tool — each may vote; the strictest vote wins (deny > ask > allow), so no layer can
 * undo another's deny, and rules from the workspace (which the agent can edit) can only add
 * deny/ask. Analyses of shell text are cached (they do not depend on rules or context).
 */
export class RuleBasedPolicyEngine implements PolicyEngine {
  readonly #analyzer: ShellAnalyzer;
  readonly #user: { allow: Rule[]; ask: Rule[]; deny: Rule[] };
  readonly #workspace: { ask: Rule[]; deny: Rule[] };
  readonly #blocked: { source: string; re: RegExp; from: string }[];
  readonly #cache = new Map<string, CommandAnalysis>();
  /** Shell verdicts depend only on the command, the context name and the cwd (the rules never change). */
  readonly #verdicts = new Map<string, Verdict[]>();
  readonly #egress: { allow: string[]; deny: string[] };
  readonly #protected: ProtectedPaths;
  readonly #readRules: Rule[];
  readonly #paths: { protect: ProtectedPaths; caseInsensitive?: boolean };

  constructor(
    config: PolicyRulesConfig = {},
    parser: ShellParser = new ShellParser(),
    options: PolicyEngineOptions = {},
  ) {
    this.#analyzer = new ShellAnalyzer(parser);
    this.#protected = options.protectedPaths ?? config.protect ?? new ProtectedPaths();
    this.#paths = { protect: this.#protected, caseInsensitive: config.caseInsensitive };
    this.#egress = { allow: config.egress?.allow ?? [], deny: config.egress?.deny ?? [] };
    const p = config.policy ?? {};
    const w = config.workspacePolicy ?? {};
    this.#user = {
      allow: parseRules(p.allow, 'policy.allow'),
      ask: parseRules(p.ask, 'policy.ask'),
      deny: parseRules(p.deny, 'policy.deny'),
    };
    this.#workspace = {
      ask: parseRules(w.ask, 'workspace policy.ask'),
      deny: parseRules(w.deny, 'workspace policy.deny'),
    };
    this.#readRules = [
      ...this.#user.deny,
      ...this.#user.ask,
      ...this.#workspace.deny,
      ...this.#workspace.ask,
    ].filter((r) => r.kind === 'path' && r.access === 'read');
    this.#blocked = [
      ...compile(p.blockedPatterns, 'policy').map((b) => ({ ...b, from: 'user' })),
      ...compile(w.blockedPatterns, 'workspace policy').map((b) => ({ ...b, from: 'workspace' })),
    ];
  }

  /** Parse and analyse a shell command line (cached). */
  analyze(command: string): CommandAnalysis {
    let a = this.#cache.get(command);
    if (a) {
      this.#cache.delete(command);
      this.#cache.set(command, a);
      return a;
    }
    a = this.#analyzer.analyze(command);
    if (this.#cache.size >= CACHE_SIZE) this.#cache.delete(this.#cache.keys().next().value as string);
    this.#cache.set(command, a);
    return a;
  }

  evaluate(request: PolicyRequest, ctx: PolicyContext): Decision {
    try {
      const decision =
        request.kind === 'shell'
          ? combine(this.#shell(request.command, ctx, guestCwd(request.cwd)))
          : toolDecision(request, ctx, {
              user: this.#user,
              workspace: this.#workspace,
              egress: this.#egress,
              ...this.#paths,
            });
      if (decision.effect === 'ask' && request.kind === 'shell' && ctx.approvedForTask?.has(request.command))
        return {
          effect: 'allow',
          layer: 'context',
          rule: 'approved-for-task',
          reasons: ['the user approved this exact command for the rest of the task', ...decision.reasons],
        };
      return decision;
    } catch (err) {
      // Fail closed: a bug in analysis must never turn into an allow.
      return {
        effect: 'deny',
        layer: 'guardrails',
        rule: 'internal-error',
        reasons: [`the policy engine failed: ${(err as Error).message}`],
      };
    }
  }

  #shell(command: string, ctx: PolicyContext, cwd: string): Verdict[] {
    const key = `${ctx.context}\0${cwd}\0${command}`;
    const hit = this.#verdicts.get(key);
    if (hit) return hit;
    const v = this.#shellVerdicts(command, ctx, cwd);
    if (this.#verdicts.size >= CACHE_SIZE)
      this.#verdicts.delete(this.#verdicts.keys().next().value as string);
    this.#verdicts.set(key, v);
    return v;
  }

  #shellVerdicts(command: string, ctx: PolicyContext, cwd: string): Verdict[] {
    const a = this.analyze(command);
    const v: Verdict[] = [...this.#protectedWrites(a, cwd)];
    // 1. guardrails: built-in dangerous set, blocked patterns, unknowable constructs
    for (const f of dedupe([
      ...dangerousFindings(a),
      ...a.findings.filter((f) => !f.rule.startsWith('builtin:')),
    ]))
      v.push({ layer: 'guardrails', effect: f.effect, reason: f.reason, rule: f.rule });
    for (const b of this.#blocked) {
      const hit = b.re.test(command) ? command : a.commands.find((sc) => b.re.test(sc.text))?.text;
      if (hit !== undefined)
        v.push({
          layer: 'guardrails',
          effect: 'deny',
          reason: `\`${hit}\` matches the blocked pattern /${b.source}/ (${b.from} config)`,
          rule: `blockedPattern:${b.source}`,
        });
    }
    // 2–3. user and workspace deny/ask rules, on every simple command
    const ruleVotes = (layer: LayerName, rules: Rule[], effect: Effect) => {
      for (const r of rules) {
        const path = shellPathHit(r, a, cwd, this.#protected.caseInsensitive);
        if (path)
          v.push({
            layer,
            effect,
            reason: `${path}, which matches the ${layer} ${effect} rule ${r.source}`,
            rule: r.source,
          });
        for (const sc of a.commands)
          if (ruleHitsCommand(r, sc))
            v.push({
              layer,
              effect,
              reason: `\`${sc.text}\` matches the ${layer} ${effect} rule ${r.source}`,
              rule: r.source,
            });
      }
    };
    ruleVotes('user', this.#user.deny, 'deny');
    ruleVotes('user', this.#user.ask, 'ask');
    ruleVotes('workspace', this.#workspace.deny, 'deny');
    ruleVotes('workspace', this.#workspace.ask, 'ask');
    // 4. context defaults; allow rules only ever lift the agent/gateway default ask
    if (ctx.context === 'local')
      v.push({
        layer: 'context',
        effect: 'allow',
        reason: 'commands typed at this machine are allowed unless denied',
      });
    else
      v.push(
        ...coverageVerdicts(a, {
          allow: this.#user.allow,
          readRules: this.#readRules,
          cwd,
          context: ctx.context,
        }),
      );
    return v;
  }

  /** A literal write target inside a protected path: denied everywhere, no approval lifts it. */
  #protectedWrites(a: CommandAnalysis, cwd: string): Verdict[] {
    const out: Verdict[] = [];
    for (const t of writeTargets(a)) {
      if (t.word.dynamic || t.word.glob) continue;
      const rel = workspaceRelativePath(t.word.text, cwd);
      const why = rel === undefined ? null : this.#protected.reason(rel);
      if (why)
        out.push({
          layer: 'workspace',
          effect: 'deny',
          rule: `protected:${rel}`,
          reason: `${t.how} writes ${t.word.text}: ${why}. Protected paths cannot be approved; only config ([workspace] protect) can change that`,
        });
    }
    return out;
  }
}

/** The guest cwd of a request (a relative cwd is under /workspace; default /workspace). */
function guestCwd(cwd: string | undefined): string {
  return guestAbsolute(cwd ?? GUEST_WORKSPACE) ?? GUEST_WORKSPACE;
}

export { combine };

export function createPolicyEngine(
  config: PolicyRulesConfig = {},
  options: PolicyEngineOptions = {},
): RuleBasedPolicyEngine {
  return new RuleBasedPolicyEngine(config, new ShellParser(), options);
}
