import { CoworkError } from '../errors.js';
import type { ProtectedPaths } from '../workspace/index.js';
import { dangerousFindings, dedupe } from './dangerous.js';
import { parseRule, type Rule, ruleCoversCommand, ruleHitsCommand, shellPathHit } from './rules.js';
import { type CommandAnalysis, ShellAnalyzer, type SimpleCommand } from './shell-analysis.js';
import { ShellParser } from './shell-parser.js';
import { toolDecision } from './tool-policy.js';
import type { Decision, Effect, LayerName, PolicyContext, PolicyEngine, PolicyRequest } from './types.js';
import { combine, type Verdict } from './verdicts.js';

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

const HARMLESS_REDIRECT = /^(\/dev\/(null|stdout|stderr|tty|fd\/[0-9]+)|&?[0-9-])$/;
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
  readonly #egress: { allow: string[]; deny: string[] };
  readonly #paths: { protect?: ProtectedPaths; caseInsensitive?: boolean };

  constructor(config: PolicyRulesConfig = {}, parser: ShellParser = new ShellParser()) {
    this.#analyzer = new ShellAnalyzer(parser);
    this.#paths = { protect: config.protect, caseInsensitive: config.caseInsensitive };
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
          ? combine(this.#shell(request.command, ctx))
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

  #shell(command: string, ctx: PolicyContext): Verdict[] {
    const a = this.analyze(command);
    const v: Verdict[] = [];
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
        const path = shellPathHit(r, a);
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
    else v.push(...this.#coverage(a, ctx));
    return v;
  }

  /** Agent/gateway shell: allow only when an allow rule covers every simple command and nothing writes files. */
  #coverage(a: CommandAnalysis, ctx: PolicyContext): Verdict[] {
    const uncovered: string[] = [];
    const used = new Set<string>();
    for (const sc of a.commands) {
      const r = this.#user.allow.find((rule) => ruleCoversCommand(rule, sc));
      if (r) used.add(r.source);
      else uncovered.push(describeUncovered(sc));
    }
    for (const red of a.redirections)
      if (['>', '>>', '>|', '<>', '&>', '&>>'].includes(red.op) && !HARMLESS_REDIRECT.test(red.target.text))
        uncovered.push(`the redirection ${red.op} ${red.target.text} writes a file`);
    if (uncovered.length > 0)
      return uncovered.map((u) => ({
        layer: 'context' as const,
        effect: 'ask' as const,
        reason: `${u}; the ${ctx.context} needs approval`,
      }));
    if (a.commands.length === 0)
      return [{ layer: 'context', effect: 'allow', reason: 'the command runs nothing' }];
    const rules = [...used];
    return [
      {
        layer: 'user',
        effect: 'allow',
        reason: `every command is covered by the allow rule${rules.length > 1 ? 's' : ''} ${rules.join(', ')}`,
        rule: rules.join(', '),
      },
    ];
  }
}

function describeUncovered(sc: SimpleCommand): string {
  if (sc.name === '' && sc.words.length === 0)
    return `\`${sc.text}\` sets variables that change what later commands do`;
  if (sc.assigns.length > 0) return `\`${sc.text}\` sets ${sc.assigns.join(', ')} for the command`;
  return `\`${sc.text}\` is not covered by an allow rule`;
}

export { combine };

export function createPolicyEngine(config: PolicyRulesConfig = {}): RuleBasedPolicyEngine {
  return new RuleBasedPolicyEngine(config);
}
