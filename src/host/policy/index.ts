export { type CheckPolicyOptions, checkPolicy, DECISION_EXIT_CODES } from './check.js';
export { combine, createPolicyEngine, type PolicyRulesConfig, RuleBasedPolicyEngine } from './engine.js';
export { globToRegExp, matchesGlob } from './glob.js';
export {
  assertStillInside,
  checkPath,
  GUEST_WORKSPACE,
  type PathAccess,
  type PathCheck,
} from './path-guard.js';
export { parseRule, type Rule } from './rules.js';
export type { CommandAnalysis, Finding, Redirection, SimpleCommand } from './shell-analysis.js';
export * from './types.js';
export type { ShellWord } from './words.js';
