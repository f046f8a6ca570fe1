import { z } from 'zod';
import { CoworkError } from '../errors.js';
import { normalizeHost, splitHostPort } from './host.js';

/**
 * Egress rules and the pure decision over them.
 *
 * Rule entries (allow and deny use the same syntax):
 *   "example.com"        exactly that host
 *   "*.example.com"      subdomains of example.com at any depth, NOT example.com itself
 *   ".example.com"       example.com and all its subdomains
 *   "*"                  every host (the SSRF guard still applies)
 *   "203.0.113.7", "[2001:db8::1]", "2001:db8::1"   an IP literal (any spelling; compared canonically)
 *   any of the above + ":PORT"  (e.g. "example.com:8443", "[::1]:8080")
 * An allow entry without a port allows ports 80 and 443 only; with a port, exactly that port.
 * A deny entry without a port denies every port of the host; with a port, only that port.
 * An allow entry that names an IP literally is also what lets the proxy dial that IP when the
 * SSRF guard would otherwise refuse it (loopback, private, ...).
 */
export const EgressRulesSchema = z
  .object({
    allow: z.array(z.string()).default([]),
    deny: z.array(z.string()).default([]),
    ask: z.boolean().default(false),
  })
  .strict();

export type EgressRulesInput = z.input<typeof EgressRulesSchema>;

export type HostPattern =
  | { kind: 'any' }
  | { kind: 'exact'; host: string; isIp: boolean }
  | { kind: 'subdomains'; domain: string } // *.example.com
  | { kind: 'domain'; domain: string }; // .example.com

export interface EgressRule {
  /** The entry as written in the config, for messages and the timeline. */
  text: string;
  pattern: HostPattern;
  port?: number;
}

export interface EgressRules {
  /** Marks the output of compileRules, so compiled rules are not parsed twice. */
  readonly compiled: true;
  allow: EgressRule[];
  deny: EgressRule[];
  ask: boolean;
}

export const DEFAULT_PORTS: ReadonlySet<number> = new Set([80, 443]);

export function parseRule(text: string, list: 'allow' | 'deny'): EgressRule {
  const bad = (why: string) =>
    new CoworkError(
      'invalidArgument',
      `egress.${list} entry ${JSON.stringify(text)} is not valid: ${why}. Use "host", "*.domain", ".domain", ` +
        `an IP address, or any of these followed by ":PORT" (e.g. "example.com:8443", "[::1]:8080").`,
    );
  const trimmed = text.trim();
  const split = splitHostPort(trimmed);
  if (!split) throw bad('cannot read the host and port');
  const port = split.port;
  const hostText = split.host;
  if (hostText === '*') return { text, pattern: { kind: 'any' }, port };
  const wildcard = hostText.startsWith('*.') ? 'subdomains' : hostText.startsWith('.') ? 'domain' : null;
  const bare =
    wildcard === 'subdomains' ? hostText.slice(2) : wildcard === 'domain' ? hostText.slice(1) : hostText;
  if (bare.includes('*')) throw bad('"*" is only allowed as a whole label at the start ("*.example.com")');
  const host = normalizeHost(bare);
  if (!host) throw bad(`${JSON.stringify(bare)} is not a host name or IP address`);
  if (wildcard && host.kind === 'ip') throw bad('a wildcard cannot be combined with an IP address');
  if (wildcard === 'subdomains') return { text, pattern: { kind: 'subdomains', domain: host.host }, port };
  if (wildcard === 'domain') return { text, pattern: { kind: 'domain', domain: host.host }, port };
  return { text, pattern: { kind: 'exact', host: host.host, isIp: host.kind === 'ip' }, port };
}

/** Validates the config shape and every entry; throws CoworkError('invalidArgument') naming the entry. */
export function compileRules(input: EgressRulesInput | EgressRules | undefined): EgressRules {
  if (input && isCompiled(input)) return input;
  const parsed = EgressRulesSchema.safeParse(input ?? {});
  if (!parsed.success) {
    throw new CoworkError(
      'invalidArgument',
      `egress rules are not valid: ${parsed.error.message}`,
      parsed.error,
    );
  }
  return {
    compiled: true,
    allow: parsed.data.allow.map((t) => parseRule(t, 'allow')),
    deny: parsed.data.deny.map((t) => parseRule(t, 'deny')),
    ask: parsed.data.ask,
  };
}

function isCompiled(input: EgressRulesInput | EgressRules): input is EgressRules {
  return (input as Partial<EgressRules>).compiled === true;
}

/** Does the pattern cover this canonical host? */
export function hostMatches(pattern: HostPattern, host: string): boolean {
  switch (pattern.kind) {
    case 'any':
      return true;
    case 'exact':
      return host === pattern.host;
    case 'subdomains':
      return host.endsWith(`.${pattern.domain}`);
    case 'domain':
      return host === pattern.domain || host.endsWith(`.${pattern.domain}`);
  }
}

export function allowRuleMatches(rule: EgressRule, host: string, port: number): boolean {
  const portOk = rule.port === undefined ? DEFAULT_PORTS.has(port) : rule.port === port;
  return portOk && hostMatches(rule.pattern, host);
}

export function denyRuleMatches(rule: EgressRule, host: string, port: number): boolean {
  return (rule.port === undefined || rule.port === port) && hostMatches(rule.pattern, host);
}

export type EgressStage = 'invalid' | 'deny-list' | 'allow-list' | 'port' | 'task' | 'ask' | 'default';

export interface EgressDecision {
  effect: 'allow' | 'ask' | 'deny';
  /** Which step decided. */
  stage: EgressStage;
  /** One human sentence. */
  reason: string;
  /** The config entry that decided, when one did. */
  rule?: string;
}

/**
 * The policy decision for one host and port, before any resolution:
 * deny list → allow list → port restriction → hosts approved for this task → ask → deny.
 * `host` may be in any spelling; it is normalised first. Pure.
 */
export function decideEgress(
  host: string,
  port: number,
  rulesInput: EgressRulesInput | EgressRules | undefined,
  approvedForTask?: ReadonlySet<string>,
): EgressDecision {
  const rules = compileRules(rulesInput);
  const norm = normalizeHost(host);
  if (!norm || !Number.isInteger(port) || port < 1 || port > 65535) {
    return {
      effect: 'deny',
      stage: 'invalid',
      reason: `${JSON.stringify(host)}:${port} is not a valid host and port`,
    };
  }
  const h = norm.host;
  const denied = rules.deny.find((r) => denyRuleMatches(r, h, port));
  if (denied) {
    return {
      effect: 'deny',
      stage: 'deny-list',
      reason: `${h} is on the egress deny list`,
      rule: denied.text,
    };
  }
  const allowed = rules.allow.find((r) => allowRuleMatches(r, h, port));
  if (allowed) {
    return {
      effect: 'allow',
      stage: 'allow-list',
      reason: `${h} is on the egress allow list`,
      rule: allowed.text,
    };
  }
  if (!DEFAULT_PORTS.has(port)) {
    return {
      effect: 'deny',
      stage: 'port',
      reason: `port ${port} is not allowed: only 80 and 443 are, unless an allow rule names the port`,
    };
  }
  if (approvedForTask?.has(h)) {
    return { effect: 'allow', stage: 'task', reason: `${h} was approved for this task` };
  }
  if (rules.ask) return { effect: 'ask', stage: 'ask', reason: `${h} is not on the egress allow list` };
  return { effect: 'deny', stage: 'default', reason: `${h} is not on the egress allow list` };
}
