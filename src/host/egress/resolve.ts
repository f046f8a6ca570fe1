import { lookup as dnsLookup } from 'node:dns/promises';
import { CoworkError } from '../errors.js';
import { hostPortText, type NormalizedHost, normalizeHost } from './host.js';
import {
  blockedAddressReason,
  dialAddress,
  formatIp,
  METADATA_NAMES,
  type ParsedIp,
  parseIp,
} from './ip-address.js';
import { denyRuleMatches, type EgressKind, type EgressRules, STANDARD_PORT } from './rules.js';

/**
 * The SSRF guard: turns an allowed host into the ONE address the proxy will dial. A name is
 * resolved once here; the proxy dials the returned address and never looks the name up again,
 * so a DNS answer that changes between check and connect (rebinding) cannot reach anything.
 */

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a name to every address it has. Tests inject one to count lookups. */
export type LookupFn = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemLookup: LookupFn = async (hostname) => {
  const all = await dnsLookup(hostname, { all: true, verbatim: true });
  return all.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

export type TestResolveMap = ReadonlyMap<string, ParsedIp[]>;

/**
 * Compiles `[egress.testResolve]`. Refused unless the caller opted in explicitly, because a
 * mapping is also what lets a name reach loopback without an IP rule.
 */
export function compileTestResolve(
  table: Record<string, string | string[]> | undefined,
  enabled: boolean,
): TestResolveMap {
  const out = new Map<string, ParsedIp[]>();
  const entries = Object.entries(table ?? {});
  if (entries.length === 0) return out;
  if (!enabled) {
    throw new CoworkError(
      'invalidArgument',
      'egress.testResolve is set but test resolution is not enabled: it exists only for tests. ' +
        'Remove [egress.testResolve] from the config, or set COWORK_VM_TEST_RESOLVE=1 when running tests.',
    );
  }
  for (const [name, value] of entries) {
    const host = normalizeHost(name);
    if (host?.kind !== 'name') {
      throw new CoworkError(
        'invalidArgument',
        `egress.testResolve key ${JSON.stringify(name)} must be a host name`,
      );
    }
    const ips = (Array.isArray(value) ? value : [value]).map((v) => {
      const ip = parseIp(v);
      if (!ip) {
        throw new CoworkError(
          'invalidArgument',
          `egress.testResolve.${name} = ${JSON.stringify(v)} is not an IP address`,
        );
      }
      return ip;
    });
    if (ips.length === 0)
      throw new CoworkError('invalidArgument', `egress.testResolve.${name} has no address`);
    out.set(host.host, ips);
  }
  return out;
}

export type TargetCheck =
  | { ok: true; address: string; family: 4 | 6; via: 'literal' | 'dns' | 'test-resolve' }
  | { ok: false; stage: 'ssrf' | 'deny-list' | 'resolve'; reason: string; rule?: string; address?: string };

/**
 * True when an allow entry names, as its destination, the address the proxy will dial for this
 * port. An IPv4 rule names its mapped and compatible forms too (they are dialled as that IPv4
 * address), but neither a NAT64 or SIIT form of it nor the other way round: those go to a
 * translator, and loopback there is not loopback here.
 */
function namedByAllowRule(rules: EgressRules, ip: ParsedIp, port: number, kind: EgressKind): boolean {
  const dialled = dialForm(ip).text;
  return rules.allow.some(
    (r) =>
      r.pattern.kind === 'exact' &&
      r.pattern.isIp &&
      r.pattern.dial === dialled &&
      (r.port === undefined ? port === STANDARD_PORT[kind] : r.port === port),
  );
}

/** The address actually dialled (see dialAddress). */
export function dialForm(ip: ParsedIp): ParsedIp {
  const bytes = dialAddress(ip.bytes);
  return bytes === ip.bytes ? ip : { family: 4, bytes, text: formatIp(bytes) };
}

export async function checkTarget(
  host: NormalizedHost,
  port: number,
  kind: EgressKind,
  rules: EgressRules,
  opts: { lookup: LookupFn; testResolve: TestResolveMap },
): Promise<TargetCheck> {
  if (host.kind === 'name' && METADATA_NAMES.has(host.host)) {
    return { ok: false, stage: 'ssrf', reason: `${host.host} is a cloud metadata service name` };
  }
  let candidates: ParsedIp[];
  let via: 'literal' | 'dns' | 'test-resolve';
  const mapped = host.kind === 'name' ? opts.testResolve.get(host.host) : undefined;
  if (host.kind === 'ip') {
    candidates = [{ family: host.family, bytes: host.bytes, text: host.host }];
    via = 'literal';
  } else if (mapped) {
    candidates = mapped;
    via = 'test-resolve';
  } else {
    let answers: ResolvedAddress[];
    try {
      answers = await opts.lookup(host.host);
    } catch (err) {
      const code = (err as { code?: string }).code ?? (err as Error).message;
      return { ok: false, stage: 'resolve', reason: `${host.host} could not be resolved (${code})` };
    }
    candidates = [];
    for (const a of answers) {
      const ip = parseIp(a.address);
      if (!ip)
        return { ok: false, stage: 'resolve', reason: `${host.host} resolved to an unreadable address` };
      candidates.push(ip);
    }
    via = 'dns';
  }
  if (candidates.length === 0) return { ok: false, stage: 'resolve', reason: `${host.host} has no address` };
  // Every address is judged, not only the one dialled: a name that mixes public and internal
  // addresses is refused as a whole.
  for (const ip of candidates) {
    const asHost: NormalizedHost = { kind: 'ip', host: ip.text, family: ip.family, bytes: ip.bytes };
    const denied = rules.deny.find(
      (r) =>
        (r.pattern.kind === 'any' || (r.pattern.kind === 'exact' && r.pattern.isIp)) &&
        denyRuleMatches(r, asHost, port),
    );
    if (denied) {
      const reason = `${hostPortText(host.host, port)} resolves to ${ip.text}, which is on the egress deny list`;
      return { ok: false, stage: 'deny-list', reason, rule: denied.text, address: ip.text };
    }
    if (via === 'test-resolve' || namedByAllowRule(rules, ip, port, kind)) continue;
    const blocked = blockedAddressReason(ip.bytes);
    if (blocked) {
      const what = host.kind === 'ip' ? `${ip.text} is` : `${host.host} resolves to ${ip.text},`;
      return { ok: false, stage: 'ssrf', reason: `${what} ${blocked}`, address: ip.text };
    }
  }
  const dialled = candidates.map(dialForm);
  const chosen = dialled.find((c) => c.family === 4) ?? (dialled[0] as ParsedIp);
  return { ok: true, address: chosen.text, family: chosen.family, via };
}
