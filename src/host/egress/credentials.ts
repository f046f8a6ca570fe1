import { CoworkError } from '../errors.js';
import type { SecretStore } from '../secrets/types.js';

/**
 * Credential rules (`[[egress.credentials]]`): for one host, the proxy terminates the guest's
 * TLS, refuses requests that bring their own credential, applies the method and path limits
 * and adds the header with the keychain's secret. Pure code; the proxy only asks it.
 */

/** One `[[egress.credentials]]` table as the config schema parses it. */
export interface CredentialRuleInput {
  host: string;
  header: string;
  /** The header's value; `{secret}` is replaced with the keychain entry's value. */
  value: string;
  /** Keychain entry name (`cowork-vm secrets set NAME`). */
  secret: string;
  methods?: string[];
  paths?: string[];
  /** Headers the guest may not send to this host (default DEFAULT_REFUSED_HEADERS); the rule's own header always is. */
  refuseHeaders?: string[];
}

/** A rule with its secret in place: lives in the host process only. */
export interface CredentialRule {
  host: string;
  /** Lowercase header name the proxy sets. */
  header: string;
  /** The full header value, secret included. Never logged, never sent to any other host. */
  headerValue: string;
  /** The keychain entry's name (what the timeline shows; never the value). */
  secretName: string;
  methods?: ReadonlySet<string>;
  paths?: readonly string[];
  refuseHeaders: readonly string[];
}

export const DEFAULT_REFUSED_HEADERS = ['authorization', 'x-api-key', 'cookie'] as const;

export const SECRET_PLACEHOLDER = '{secret}';

/**
 * Reads each rule's secret from the keychain. Fails closed: no keychain, a missing entry, or a
 * value that cannot travel in a header is an error naming the rule (the sandbox does not start).
 */
export async function resolveCredentials(
  inputs: readonly CredentialRuleInput[],
  store: SecretStore,
): Promise<CredentialRule[]> {
  const out: CredentialRule[] = [];
  for (const [i, input] of inputs.entries()) {
    const key = `egress.credentials[${i}] (host ${input.host})`;
    const secret = await store.get(input.secret);
    if (secret === undefined) {
      throw new CoworkError(
        'notFound',
        `${key}: the keychain has no secret "${input.secret}" — run \`cowork-vm secrets set ${input.secret}\``,
      );
    }
    out.push(compileCredentialRule(input, secret, key));
  }
  return out;
}

export function compileCredentialRule(
  input: CredentialRuleInput,
  secret: string,
  key = 'credential rule',
): CredentialRule {
  if (!input.value.includes(SECRET_PLACEHOLDER)) {
    throw new CoworkError(
      'invalidArgument',
      `${key}: value ${JSON.stringify(input.value)} has no ${SECRET_PLACEHOLDER}`,
    );
  }
  if (secret === '' || !HEADER_VALUE.test(secret)) {
    throw new CoworkError(
      'invalidArgument',
      `${key}: secret "${input.secret}" is empty or holds characters a header cannot carry (control characters, line breaks) — set it again`,
    );
  }
  const header = input.header.toLowerCase();
  const refuse = new Set((input.refuseHeaders ?? DEFAULT_REFUSED_HEADERS).map((h) => h.toLowerCase()));
  refuse.add(header);
  return {
    host: input.host.toLowerCase(),
    header,
    headerValue: input.value.split(SECRET_PLACEHOLDER).join(secret),
    secretName: input.secret,
    ...(input.methods ? { methods: new Set(input.methods.map((m) => m.toUpperCase())) } : {}),
    ...(input.paths ? { paths: [...input.paths] } : {}),
    refuseHeaders: [...refuse],
  };
}

const HEADER_VALUE = /^[\x20-\x7e\x80-\xff\t]*$/;

export type CredentialCheck = { ok: true } | { ok: false; status: 400 | 403 | 421; reason: string };

/**
 * Whether a request the guest sent over the terminated TLS may have the credential added.
 * `target` is the request-target as sent (origin-form expected); `headers` are Node's
 * lowercased headers.
 */
export function checkCredentialedRequest(
  rule: CredentialRule,
  req: { method: string; target: string; headers: Record<string, string | string[] | undefined> },
): CredentialCheck {
  const hostHeader = String(req.headers.host ?? '').toLowerCase();
  if (hostHeader !== rule.host && hostHeader !== `${rule.host}:443`) {
    return {
      ok: false,
      status: 421,
      reason: `the request names host ${JSON.stringify(hostHeader)} inside a connection to ${rule.host}`,
    };
  }
  const own = rule.refuseHeaders.find((h) => req.headers[h] !== undefined);
  if (own) {
    return {
      ok: false,
      status: 403,
      reason: `the request carries its own ${own} header for ${rule.host}; the sandbox adds this host's credential itself and refuses any other (so no one else's account can be used through it)`,
    };
  }
  const method = req.method.toUpperCase();
  if (rule.methods && !rule.methods.has(method)) {
    return {
      ok: false,
      status: 403,
      reason: `${method} is not among the methods the credential rule for ${rule.host} allows (${[...rule.methods].join(', ')})`,
    };
  }
  if (!req.target.startsWith('/')) {
    return { ok: false, status: 400, reason: 'the request-target is not a path (origin-form) on this host' };
  }
  const path = req.target.split('?')[0] ?? '';
  if (rule.paths) {
    const odd = ambiguousPath(path);
    if (odd) return { ok: false, status: 403, reason: `the path ${JSON.stringify(path)} ${odd}` };
    if (!rule.paths.some((p) => pathMatches(p, path))) {
      return {
        ok: false,
        status: 403,
        reason: `the path ${JSON.stringify(path)} is outside the paths the credential rule for ${rule.host} allows (${rule.paths.join(', ')})`,
      };
    }
  }
  return { ok: true };
}

/** `*` stands for any run of characters, `/` included; everything else is literal. */
export function pathMatches(pattern: string, path: string): boolean {
  const re = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${re}$`).test(path);
}

/**
 * A path an upstream could read as another path than the rule sees: dot segments, empty
 * segments, encoded slashes, dots or backslashes. Refused when the rule limits paths.
 */
function ambiguousPath(path: string): string | undefined {
  if (/%(2e|2f|5c)/i.test(path) || path.includes('\\')) return 'encodes a dot, slash or backslash';
  if (/(^|\/)\.\.?(\/|$)/.test(path)) return 'has a dot segment';
  if (path.includes('//')) return 'has an empty segment';
  return undefined;
}
