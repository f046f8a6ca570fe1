import { z } from 'zod';
import { CoworkError } from '../errors.js';
import { type NormalizedHost, normalizeHost, splitHostPort } from './host.js';
import { denyAddresses, dialAddress, formatIp, ruleAddress } from './ip-address.js';
import { isListedPublicSuffix, wildcardCoversPublicSuffix } from './public-suffix.js';

/**
 * Egress rules and the pure decision over them.
 *
 * Rule entries (allow and deny use the same syntax):
 *   "example.com"        exactly that host
 *   "*.example.com"      subdomains of example.com at any depth, NOT example.com itself
 *   ".example.com"       example.com and all its subdomains
 *   "203.0.113.7", "[2001:db8::1]", "2001:db8::1"   an IP literal (any spelling; compared canonically)
 *   any of the above + ":PORT"  (e.g. "example.com:8443", "[::1]:8080")
 *   "*"                  deny list: every host; allow list: only as "*:PORT" (every host on that port)
 * An allow entry without a port allows the standard port of the way the guest asks: 80 for
 * plain HTTP forwarding, 443 for CONNECT. With a port, exactly that port (either way).
 * A deny entry without a port denies every port of the host; with a port, only that port.
 * An allow entry may not be or cover a public suffix (`.com`, `*.co.uk`, `*.github.io`):
 * allowing every host needs `allowAll = true`, which still keeps the standard ports, the deny
 * list and the SSRF guard.
 * IP rules match the address an IPv6 literal or answer reaches: `::ffff:203.0.113.7`, its hex
 * form, `::203.0.113.7`, `::ffff:0:203.0.113.7` and the NAT64 forms (`64:ff9b::/96`,
 * `64:ff9b:1::/48`) are matched as 203.0.113.7; a deny entry also sees through 6to4.
 * An allow entry that names an IP literally is also what lets the proxy dial that IP when the
 * SSRF guard would otherwise refuse it (loopback, private, ...).
 */
export const EgressRulesSchema = z
  .object({
    allow: z.array(z.string()).default([]),
    deny: z.array(z.string()).default([]),
    ask: z.boolean().default(false),
    allowAll: z.boolean().default(false),
  })
  .strict();

export type EgressRulesInput = z.input<typeof EgressRulesSchema>;

export type HostPattern =
  | { kind: 'any' }
  /**
   * `host` is what rules compare (see ruleAddress); for an IP, `dial` is the one address the
   * entry names as a destination (see dialAddress), the only one it lifts the SSRF guard for.
   */
  | { kind: 'exact'; host: string; isIp: boolean; dial?: string }
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
  allowAll: boolean;
}

/** How the guest asked: plain HTTP forwarding (absolute-form request) or a CONNECT tunnel. */
export type EgressKind = 'http' | 'connect';

/** The port an allow entry without a port means, per way of asking. */
export const STANDARD_PORT: Readonly<Record<EgressKind, number>> = { http: 80, connect: 443 };

/** The key an approval or a task grant is stored under: the name, or the address rules see. */
export function grantKey(host: NormalizedHost): string {
  return host.kind === 'ip' ? ruleAddress(host.bytes) : host.host;
}

function tooBroadAdvice(why: string): string {
  return (
    `${why}, so it would allow hosts anyone can register. Name the hosts or domains you mean ` +
    '(e.g. "api.example.com", ".example.com"), or set `allowAll = true` in [egress] to allow every ' +
    'host on ports 80 (HTTP) and 443 (CONNECT)'
  );
}

/**
 * Why an allow entry is too broad (it is "*", or is or covers a public suffix), as the sentence
 * the config error carries, or null — also for entries that are not valid at all (parseRule
 * says why those are wrong).
 */
export function allowEntryTooBroad(text: string): string | null {
  let rule: EgressRule;
  try {
    rule = parseEntry(text, 'allow');
  } catch {
    return null;
  }
  const why = breadth(rule);
  return why === null ? null : tooBroadAdvice(why);
}

/** Parses an entry; an allow entry that is too broad is refused (see allowEntryTooBroad). */
export function parseRule(text: string, list: 'allow' | 'deny'): EgressRule {
  const rule = parseEntry(text, list);
  const why = list === 'allow' ? breadth(rule) : null;
  if (why !== null) {
    throw new CoworkError(
      'invalidArgument',
      `egress.allow entry ${JSON.stringify(text)} is refused: ${tooBroadAdvice(why)}`,
    );
  }
  return rule;
}

/** Why an allow rule would cover hosts anyone can register, or null. */
function breadth(rule: EgressRule): string | null {
  const p = rule.pattern;
  // Every host on one named port is an explicit choice; every host on the standard ports is
  // what allowAll says, and only allowAll may say it.
  if (p.kind === 'any') return rule.port === undefined ? '"*" is every host' : null;
  if (p.kind === 'subdomains' || p.kind === 'domain') return wildcardCoversPublicSuffix(p.domain);
  if (!p.isIp && isListedPublicSuffix(p.host)) return `"${p.host}" is a public suffix`;
  return null;
}

function parseEntry(text: string, list: 'allow' | 'deny'): EgressRule {
  const bad = (why: string) =>
    new CoworkError(
      'invalidArgument',
      `egress.${list} entry ${JSON.stringify(text)} is not valid: ${why}. Use "host", "*.domain", ".domain", ` +
        `an IP address, or any of these followed by ":PORT" (e.g. "example.com:8443", "[::1]:8080").`,
    );
  const split = splitHostPort(text.trim());
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
  if (host.kind === 'ip') {
    const dial = formatIp(dialAddress(host.bytes));
    const pattern = { kind: 'exact', host: ruleAddress(host.bytes), isIp: true, dial } as const;
    return { text, pattern, port };
  }
  return { text, pattern: { kind: 'exact', host: host.host, isIp: false }, port };
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
    allowAll: parsed.data.allowAll,
  };
}

function isCompiled(input: EgressRulesInput | EgressRules): input is EgressRules {
  return (input as Partial<EgressRules>).compiled === true;
}

/** Does the pattern cover this canonical host text? */
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

/** The texts of a host that rules of each list are matched against (see the header comment). */
function matchTexts(host: NormalizedHost): { allow: string; deny: string[] } {
  if (host.kind === 'name') return { allow: host.host, deny: [host.host] };
  const deny = denyAddresses(host.bytes);
  const allow = ruleAddress(host.bytes);
  return { allow, deny: deny.includes(allow) ? deny : [...deny, allow] };
}

export function allowRuleMatches(
  rule: EgressRule,
  host: NormalizedHost,
  port: number,
  kind: EgressKind,
): boolean {
  const portOk = rule.port === undefined ? port === STANDARD_PORT[kind] : rule.port === port;
  return portOk && hostMatches(rule.pattern, matchTexts(host).allow);
}

export function denyRuleMatches(rule: EgressRule, host: NormalizedHost, port: number): boolean {
  if (rule.port !== undefined && rule.port !== port) return false;
  return matchTexts(host).deny.some((t) => hostMatches(rule.pattern, t));
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

export interface EgressAsk {
  /** Any spelling; normalised first. */
  host: string;
  port: number;
  kind: EgressKind;
}

/**
 * The policy decision for one host and port, before any resolution:
 * deny list → allow list (and allowAll) → port restriction → hosts granted to this task → ask
 * → deny. `grantedToTask` holds grant keys (see grantKey). Pure.
 */
export function decideEgress(
  ask: EgressAsk,
  rulesInput: EgressRulesInput | EgressRules | undefined,
  grantedToTask?: ReadonlySet<string>,
): EgressDecision {
  const { port, kind } = ask;
  const rules = compileRules(rulesInput);
  const norm = normalizeHost(ask.host);
  if (!norm || !Number.isInteger(port) || port < 1 || port > 65535) {
    return {
      effect: 'deny',
      stage: 'invalid',
      reason: `${JSON.stringify(ask.host)}:${port} is not a valid host and port`,
    };
  }
  const h = norm.host;
  const denied = rules.deny.find((r) => denyRuleMatches(r, norm, port));
  if (denied) {
    return {
      effect: 'deny',
      stage: 'deny-list',
      reason: `${h} is on the egress deny list`,
      rule: denied.text,
    };
  }
  const allowed = rules.allow.find((r) => allowRuleMatches(r, norm, port, kind));
  if (allowed) {
    return {
      effect: 'allow',
      stage: 'allow-list',
      reason: `${h} is on the egress allow list`,
      rule: allowed.text,
    };
  }
  const standard = STANDARD_PORT[kind];
  if (port !== standard) {
    const how = kind === 'connect' ? 'CONNECT' : 'plain HTTP';
    return {
      effect: 'deny',
      stage: 'port',
      reason: `port ${port} is not allowed for ${how}: only ${standard} is, unless an allow rule names the port`,
    };
  }
  if (rules.allowAll) {
    return { effect: 'allow', stage: 'allow-list', reason: 'egress.allowAll is on', rule: 'allowAll' };
  }
  if (grantedToTask?.has(grantKey(norm))) {
    return { effect: 'allow', stage: 'task', reason: `${h} was approved for this task` };
  }
  if (rules.ask) return { effect: 'ask', stage: 'ask', reason: `${h} is not on the egress allow list` };
  return { effect: 'deny', stage: 'default', reason: `${h} is not on the egress allow list` };
}
