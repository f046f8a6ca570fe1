import { isWriteRedirect } from './dangerous.js';
import { globToRegExp } from './glob.js';
import { ARG_INERT, argumentRisk, hasRiskTable, NO_FILE_ARGS, recursiveRead } from './program-risks.js';
import { type Rule, ruleCoversCommand } from './rules.js';
import type { CommandAnalysis, SimpleCommand } from './shell-analysis.js';
import { SHELL_STATE } from './shell-vocab.js';
import type { Verdict } from './verdicts.js';
import { isOpaquePath, workspaceRelativePath } from './write-targets.js';

/** The path inside an argument: `--file=/dev/fd/3` → /dev/fd/3, `if=x` → x. */
function argPath(text: string): string {
  if (text.startsWith('-')) return text.slice(text.indexOf('=') + 1 || text.length);
  return text.replace(/^(of|if)=/, '');
}

/**
 * Auto-approval for the agent and gateway contexts. The polarity is "allow only what is
 * positively understood": the command line is inside the known subset of shell (shell-subset.ts),
 * every simple command is covered by an allow rule and free of the arguments that make a trusted
 * program execute or write (program-risks.ts), and every redirection is to a literal workspace
 * path or /dev/null. Anything else — including a command line that runs nothing — asks.
 */
export interface CoverageInput {
  allow: Rule[];
  /** Read deny/ask rules: a glob or an unseen argument could name a file they protect. */
  readRules: Rule[];
  cwd: string;
  context: string;
}

export function coverageVerdicts(a: CommandAnalysis, input: CoverageInput): Verdict[] {
  const asks: string[] = [...a.outside];
  const used = new Set<string>();
  for (const sc of a.commands) {
    const why = commandGap(sc, input, used);
    if (why) asks.push(why);
  }
  for (const r of a.redirections) {
    const why = redirectionGap(r.op, r.target, input.cwd);
    if (why) asks.push(why);
  }
  if (asks.length === 0 && a.commands.length === 0)
    asks.push('the command runs nothing the policy can vouch for');
  if (asks.length > 0)
    return [...new Set(asks)].map((u) => ({
      layer: 'context' as const,
      effect: 'ask' as const,
      reason: `${u}; the ${input.context} needs approval`,
    }));
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

function commandGap(sc: SimpleCommand, input: CoverageInput, used: Set<string>): string | undefined {
  const rule = input.allow.find((r) => ruleCoversCommand(r, sc));
  if (rule?.kind !== 'bash') return describeUncovered(sc);
  if (SHELL_STATE.has(sc.name))
    return `\`${sc.text}\` evaluates code or changes the shell's state for what follows`;
  if (sc.wrapperRisk) return `in \`${sc.text}\`: ${sc.wrapperRisk}`;
  // An exact rule spells out the whole command: the user vouched for every word of it.
  if (rule.words !== null && rule.prefix) {
    const risk = argumentRisk(sc.argv, rule.words.length);
    if (risk) return `in \`${sc.text}\`: ${risk}`;
    if (
      sc.dynamicArgs &&
      (!ARG_INERT.has(sc.name) || (input.readRules.length > 0 && !NO_FILE_ARGS.has(sc.name)))
    )
      return `\`${sc.text}\` receives arguments only known when it runs`;
    const opaque = sc.argv
      .slice(1)
      .find((w) => !NO_FILE_ARGS.has(sc.name) && isOpaquePath(argPath(w.text), input.cwd));
    if (opaque) return `\`${sc.text}\` names ${opaque.text}, whose target is only known when it runs`;
    if (input.readRules.length > 0 && recursiveRead(sc.argv))
      return `\`${sc.text}\` reads directories recursively, which may hold a file a Read rule protects`;
    const globs = sc.argv.slice(1).filter((w) => w.glob);
    const hit = globs.find((w) => input.readRules.some((r) => globCouldMatch(w.text, r)));
    if (hit) return `\`${sc.text}\`: the pattern ${hit.text} could name a file a Read rule protects`;
    if (globs.some((w) => /^[*?[]/.test(w.text)) && hasRiskTable(sc.name))
      return `\`${sc.text}\` has a pattern that could expand to an option of ${sc.name}`;
  }
  used.add(rule.source);
  return undefined;
}

function redirectionGap(
  op: string,
  target: { text: string; dynamic: boolean; glob: boolean },
  cwd: string,
): string | undefined {
  if (op === '<<<') return undefined; // the word itself is checked by the subset
  if ((op === '>&' || op === '<&') && /^([0-9]+-?|-)$/.test(target.text)) return undefined; // duplicate or close
  if (target.dynamic || target.glob) return `the redirection ${op} ${target.text} is only known when it runs`;
  const writes = isWriteRedirect({ op, target: { ...target, params: [] } });
  if (target.text === '/dev/null') return undefined;
  if (isOpaquePath(target.text, cwd))
    return `the redirection ${op} ${target.text} reopens a file the policy cannot see`;
  if (!writes && op !== '<') return `the redirection ${op} ${target.text} is not one the policy understands`;
  const rel = workspaceRelativePath(target.text, cwd);
  if (rel === undefined || rel === '.')
    return `the redirection ${op} ${target.text} ${writes ? 'writes' : 'reads'} outside the workspace`;
  return undefined;
}

const WILD = /[*?[]/;

/**
 * Could some path matched by the shell pattern `word` also match the rule? Over-approximates:
 * compares last components when the rule names one (`.env`, `*.pem`); a rule with a directory
 * (`secrets/**`) or wildcards on both sides counts as a possible match.
 */
export function globCouldMatch(word: string, rule: Rule): boolean {
  if (rule.kind !== 'path') return false;
  const g = rule.glob.replace(/^\.\//, '');
  if (g.includes('/') && !/^\*\*\/[^/]+$/.test(g)) return true;
  const r = g.replace(/^\*\*\//, '');
  const w = word.slice(word.lastIndexOf('/') + 1);
  const wWild = WILD.test(w);
  const rWild = WILD.test(r);
  // without dotglob a pattern matches a leading dot only when it starts with one
  if (wWild && r.startsWith('.') && !w.startsWith('.')) return false;
  if (wWild && rWild) return true;
  if (wWild) return globToRegExp(w).test(r);
  if (rWild) return globToRegExp(r).test(w);
  return w === r;
}

export function describeUncovered(sc: SimpleCommand): string {
  if (sc.name === '' && sc.words.length === 0)
    return `\`${sc.text}\` sets variables that change what later commands do`;
  if (sc.assigns.length > 0) return `\`${sc.text}\` sets ${sc.assigns.join(', ')} for the command`;
  return `\`${sc.text}\` is not covered by an allow rule`;
}
