import { z } from 'zod';
import { allowEntryTooBroad } from '../egress/rules.js';
import { parseForwardSpec } from '../jobs/forward-spec.js';
import { DEFAULT_PROTECT, invalidProtectPatterns } from '../workspace/protected.js';

/**
 * The TOML config, as zod schemas: the single source of truth for keys, types, ranges and
 * defaults. Every object is strict (an unknown key is an error naming it). Messages are
 * fragments ("is out of range (5–500)") that `formatConfigIssues` prefixes with the file,
 * the key path and the value.
 */

function fmt(n: number): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: 2 });
}

/** A number in [min, max]; `int` requires a whole number. */
export function ranged(min: number, max: number, opts: { int?: boolean } = {}) {
  const range = `${fmt(min)}–${fmt(max)}`;
  const base = z.number({ error: `must be a number in ${range}` });
  const typed = opts.int === false ? base : base.int({ error: `must be a whole number in ${range}` });
  return typed
    .min(min, { error: `is out of range (${range})` })
    .max(max, { error: `is out of range (${range})` });
}

function validRegex(s: string): boolean {
  try {
    new RegExp(s);
    return true;
  } catch {
    return false;
  }
}

/** Rule strings are checked for shape here; the policy engine parses them (see policy/rules.ts). */
const ruleString = z
  .string({ error: 'must be a rule string such as "Bash(git status)" or "Read(.env)"' })
  .regex(/^\s*[A-Za-z_][A-Za-z0-9_-]*\s*(\(.*\))?\s*$/s, {
    error: 'is not a rule: use Bash(cmd), Bash(prefix:*), Read(glob), Write(glob), Edit(glob) or a tool name',
  });

const blockedPattern = z
  .string({ error: 'must be a regular expression string' })
  .refine(validRegex, { error: 'is not a valid regular expression (fix or remove it)' });

export const policySchema = z.strictObject({
  allow: z.array(ruleString).default([]),
  ask: z.array(ruleString).default([]),
  deny: z.array(ruleString).default([]),
  blockedPatterns: z.array(blockedPattern).default([]),
});

export const GUARDRAIL_RANGES = {
  maxTokensPerTask: { min: 1_000, max: 10_000_000, default: 100_000, int: true },
  maxCostPerTask: { min: 0.01, max: 100, default: 1, int: false },
  maxIterationsPerTask: { min: 5, max: 500, default: 50, int: true },
  maxFileSizeMB: { min: 1, max: 500, default: 50, int: true },
  approvalTimeoutSeconds: { min: 10, max: 3600, default: 300, int: true },
} as const;
export type GuardrailKey = keyof typeof GUARDRAIL_RANGES;

function guardrail(key: GuardrailKey) {
  const r = GUARDRAIL_RANGES[key];
  return ranged(r.min, r.max, { int: r.int }).default(r.default);
}

export const guardrailsSchema = z.strictObject({
  maxTokensPerTask: guardrail('maxTokensPerTask'),
  maxCostPerTask: guardrail('maxCostPerTask'),
  maxIterationsPerTask: guardrail('maxIterationsPerTask'),
  maxFileSizeMB: guardrail('maxFileSizeMB'),
  approvalTimeoutSeconds: guardrail('approvalTimeoutSeconds'),
});

const usdPerMTok = z.number({ error: 'must be a number (USD per million tokens)' }).min(0, {
  error: 'must not be negative (USD per million tokens)',
});

export const modelPriceSchema = z.strictObject({
  input: usdPerMTok,
  output: usdPerMTok,
  cacheWrite: usdPerMTok.optional(),
  cacheRead: usdPerMTok.optional(),
});

export const vmSchema = z.strictObject({
  cpus: ranged(1, 16).default(2),
  memoryMiB: ranged(256, 16384).default(1024),
  image: z
    .string({ error: 'must be an image name such as "base" or "browser"' })
    .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, {
      error: 'is not an image name (lowercase letters, digits, . _ -)',
    })
    .default('base'),
  accel: z
    .enum(['auto', 'kvm', 'hvf', 'tcg'], { error: 'must be one of auto, kvm, hvf, tcg' })
    .default('auto'),
  share: z.enum(['auto', 'virtiofs', '9p'], { error: 'must be one of auto, virtiofs, 9p' }).default('auto'),
  /**
   * Start from the image's warm snapshot for this VM shape when there is one (`cowork-vm image
   * warm` takes it); the workspace is then shared over 9p. Off by default (opt-in).
   */
  warm: z.boolean({ error: 'must be true or false' }).default(false),
});

/**
 * The model `run` uses unless `--model` or `[agent] model` says otherwise: a current model of the
 * installed SDK's model list, not in its deprecated list, with a price in guardrails/pricing.ts
 * (tests/unit/models.test.ts fails when an SDK update marks it deprecated).
 */
export const DEFAULT_MODEL = 'claude-sonnet-5-5';

export const agentSchema = z.strictObject({
  model: z
    .string({ error: 'must be a model id string' })
    .min(1, { error: 'must not be empty' })
    .default(DEFAULT_MODEL),
  maxOutputTokens: ranged(1, 128_000).default(8192),
});

/**
 * `example.com`, `*.example.com` (subdomains only), `.example.com` (domain and subdomains),
 * `api.example.com:443`, an IPv4 literal or `[::1]`. src/host/egress/rules.ts gives the semantics.
 */
const hostPattern = z
  .string({ error: 'must be a host name string' })
  .regex(/^(\*\.|\.)?([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?$/, {
    error: 'is not a host pattern (example.com, *.example.com, .example.com, host:port)',
  });

const ipLiteral = z
  .string({ error: 'must be an IP address string' })
  .refine((s) => z.ipv4().safeParse(s).success || z.ipv6().safeParse(s).success, {
    error: 'is not an IP address',
  });

/** Refuses an allow entry that is or covers a public suffix (`.com`, `*.co.uk`, `*.github.io`). */
const allowPattern = hostPattern.superRefine((entry, ctx) => {
  const why = allowEntryTooBroad(entry);
  if (why) ctx.addIssue({ code: 'custom', message: `is refused: ${why}` });
});

const headerName = z
  .string({ error: 'must be an HTTP header name string' })
  .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, { error: 'is not an HTTP header name (letters, digits, - …)' });

/**
 * `[[egress.credentials]]`: the proxy adds `header: value` (with `{secret}` replaced by the
 * keychain entry `secret`) to requests for `host`, terminating TLS for that host only
 * (src/host/egress/credentials.ts gives the semantics).
 */
export const credentialSchema = z.strictObject({
  host: z
    .string({ error: 'must be a host name string' })
    .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/, {
      error: 'is not a lowercase host name such as "api.github.com" (one host: no wildcard, port or IP)',
    }),
  header: headerName,
  value: z
    .string({ error: 'must be a string such as "Bearer {secret}"' })
    .refine((v) => v.includes('{secret}'), { error: 'must contain {secret} (where the keychain value goes)' })
    .refine((v) => !/[\x00-\x1f\x7f]/.test(v.replace(/\t/g, ' ')), {
      error: 'must not contain control characters',
    }),
  secret: z
    .string({ error: 'must be a keychain entry name (set it with `cowork-vm secrets set NAME`)' })
    .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, {
      error: 'is not a secret name (1-64 of a-z 0-9 . _ -, starting with a letter or digit)',
    }),
  methods: z
    .array(
      z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'], {
        error: 'must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS',
      }),
    )
    .min(1, { error: 'must list at least one method (leave the key out to allow every method)' })
    .optional(),
  paths: z
    .array(
      z.string({ error: 'must be a path pattern string' }).regex(/^\/[^\s?#]*$/, {
        error: 'is not a path pattern: starts with /, * matches anything, no query',
      }),
    )
    .min(1, { error: 'must list at least one path (leave the key out to allow every path)' })
    .optional(),
  /** Headers the guest may not send to this host; default Authorization, x-api-key, Cookie. */
  refuseHeaders: z.array(headerName).optional(),
});

export const egressSchema = z.strictObject({
  allow: z.array(allowPattern).default([]),
  deny: z.array(hostPattern).default([]),
  ask: z.boolean({ error: 'must be true or false' }).default(false),
  /**
   * Every host, on ports 80 (plain HTTP) and 443 (CONNECT); the deny list and the SSRF guard
   * still apply. The only way to allow everything: public-suffix allow entries are refused.
   */
  allowAll: z.boolean({ error: 'must be true or false' }).default(false),
  /** Open guest connections through the proxy (tunnels included); the next one gets a 503 naming the cap. */
  maxConnections: ranged(1, 65_536).default(256),
  /** How long an upstream may take to accept the TCP connection before the guest gets a 504. */
  connectTimeoutSeconds: ranged(1, 600).default(10),
  /** A kept-alive guest connection with nothing in flight is closed after this. */
  idleTimeoutSeconds: ranged(1, 3600).default(60),
  /** Test-only name resolution; honoured only when COWORK_VM_TEST_RESOLVE=1 (checked by loadConfig). */
  testResolve: z.record(z.string(), ipLiteral).optional(),
  credentials: z
    .array(credentialSchema)
    .default([])
    .superRefine((rules, ctx) => {
      const seen = new Set<string>();
      rules.forEach((r, i) => {
        if (seen.has(r.host))
          ctx.addIssue({
            code: 'custom',
            path: [i, 'host'],
            message: `names ${r.host} a second time: keep one rule per host`,
          });
        seen.add(r.host);
      });
    }),
});

/**
 * `[guest]`: what the guest trusts besides Debian's roots and the sandbox's egress CA.
 * trustHostCAs: the CAs this host's administrator added (Debian: /usr/local/share/ca-certificates).
 */
export const guestSchema = z.strictObject({
  trustHostCAs: z.boolean({ error: 'must be true or false' }).default(true),
  extraCAs: z
    .array(
      z
        .string({ error: 'must be a file path string' })
        .regex(/^(\/|~\/)/, { error: 'must be an absolute path (or start with ~/) to a PEM file' }),
    )
    .default([]),
});

const LOOPBACK_LISTEN = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\]):\d{1,5}$/;

export const controlSchema = z
  .strictObject({
    listen: z
      .string({ error: 'must be "HOST:PORT", e.g. "127.0.0.1:7077"' })
      .regex(/^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/, {
        error: 'is not "HOST:PORT", e.g. "127.0.0.1:7077"',
      })
      .refine((s) => Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535, { error: 'has a port above 65535' })
      .optional(),
    allowRemote: z.boolean({ error: 'must be true or false' }).default(false),
    tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
    maxFrameBytes: ranged(1024, 64 * 1024 * 1024).default(1024 * 1024),
    /** From the TCP accept to a successful authentication; also how long a challenge is valid. */
    handshakeTimeoutMs: ranged(1000, 60_000).default(10_000),
    /** Requests one authenticated session may make per minute. */
    requestsPerMinute: ranged(10, 100_000).default(600),
    allowedOrigins: z
      .array(
        z.string().regex(/^https?:\/\/[^/\s]+$/, { error: 'is not an origin like "http://localhost:5173"' }),
      )
      .default([]),
  })
  .superRefine((c, ctx) => {
    if (c.listen === undefined || LOOPBACK_LISTEN.test(c.listen)) return;
    if (!c.allowRemote)
      ctx.addIssue({
        code: 'custom',
        path: ['listen'],
        message: 'is not a loopback address: set control.allowRemote = true to listen remotely',
      });
    else if (!c.tls)
      ctx.addIssue({
        code: 'custom',
        path: ['tls'],
        message: 'is required when listening on a non-loopback address (set tls.cert and tls.key)',
      });
  });

/** The web dashboard (src/host/dashboard/): served by the controller on 127.0.0.1 only. */
export const dashboardSchema = z.strictObject({
  enabled: z.boolean({ error: 'must be true or false' }).default(true),
  /** 0: a free port chosen at each start (`cowork-vm dashboard` finds it). */
  port: ranged(0, 65535).default(0),
});

const telegramId = z
  .union([z.number().int(), z.string().regex(/^-?\d+$/)], { error: 'must be a numeric Telegram user id' })
  .transform(Number);

export const telegramSchema = z
  .strictObject({
    enabled: z.boolean({ error: 'must be true or false' }).default(false),
    mode: z
      .enum(['pairing', 'allowlist', 'open'], { error: 'must be one of pairing, allowlist, open' })
      .default('pairing'),
    allowlist: z.array(telegramId).default([]),
    openConfirmed: z.boolean({ error: 'must be true or false' }).default(false),
    rateLimitPerMinute: ranged(1, 600).default(30),
    apiRoot: z.url({ error: 'is not a URL' }).optional(),
  })
  .superRefine((t, ctx) => {
    if (t.mode === 'open' && !t.openConfirmed)
      ctx.addIssue({
        code: 'custom',
        path: ['mode'],
        message: 'is "open" (anyone can talk to the agent): also set openConfirmed = true to mean it',
      });
    if (t.mode === 'allowlist' && t.allowlist.length === 0)
      ctx.addIssue({
        code: 'custom',
        path: ['allowlist'],
        message: 'is empty while mode = "allowlist": add user ids or use mode = "pairing"',
      });
  });

/**
 * `[workspace] protect`: paths the host executes or trusts, read-only in the guest (see
 * src/host/workspace/protected.ts for the defaults and why). Git metadata is always protected.
 * The user's list replaces the defaults; a workspace config may only add entries.
 */
export const workspaceSchema = z.strictObject({
  protect: z
    .array(z.string({ error: 'must be a path pattern string such as ".envrc" or ".vscode/"' }))
    .refine((list) => invalidProtectPatterns(list).length === 0, {
      error:
        'has an entry that is empty or uses "." or ".." (use names like ".envrc", "tools/run.sh", ".vscode/")',
    })
    .default([...DEFAULT_PROTECT]),
  /** The host filesystem folds case (macOS default): match protected names case-insensitively. */
  caseInsensitive: z
    .union([z.boolean(), z.literal('auto')], { error: 'must be true, false or "auto"' })
    .default('auto'),
});

/**
 * `[forward]`: guest ports opened on the host's 127.0.0.1 at every start, as if by
 * `cowork-vm forward`. Each is a port (the same on both sides) or "GUEST:HOST" (HOST 0 = free).
 */
const forwardEntry = z
  .union([z.number(), z.string()], { error: 'must be a port number or a "GUEST:HOST" string' })
  .refine(
    (v) => {
      try {
        parseForwardSpec(v);
        return true;
      } catch {
        return false;
      }
    },
    { error: 'is not GUEST_PORT[:HOST_PORT] (guest 1–65535, host 0–65535; e.g. 8000 or "3000:13000")' },
  );

export const forwardSchema = z.strictObject({
  ports: z.array(forwardEntry).max(32, { error: 'has more than 32 entries' }).default([]),
});

/**
 * `[cache]`: the disk that keeps the agent's package caches (~/.cache, ~/.npm, cargo's registry…)
 * across clean starts (src/host/cache/). Per workspace unless `shared` names one that every
 * workspace configured with that name uses — which lets a poisoned package in one project's
 * cache reach the next project, so it is off by default.
 */
export const CACHE_RANGES = { sizeGiB: { min: 1, max: 1024, default: 8 } } as const;

export const cacheSchema = z.strictObject({
  enabled: z.boolean({ error: 'must be true or false' }).default(true),
  sizeGiB: ranged(CACHE_RANGES.sizeGiB.min, CACHE_RANGES.sizeGiB.max).default(CACHE_RANGES.sizeGiB.default),
  shared: z
    .string({ error: 'must be a cache name string' })
    .regex(/^([a-z0-9][a-z0-9-]{0,24})?$/, {
      error:
        "must be empty (this workspace's own cache) or a name of a-z, 0-9 and - (up to 25, starting with a letter or digit)",
    })
    .default(''),
});

/** `[notifications]`: desktop notifications for pending approvals (D-Bus, when a session bus exists). */
export const notificationsSchema = z.strictObject({
  enabled: z.boolean({ error: 'must be true or false' }).default(true),
});

/**
 * `[mcp]`: budgets of one `cowork-vm mcp` session (one MCP client connection): how many tool
 * calls it may make and how long it may last. A call past either gets a tool error saying so.
 */
export const MCP_RANGES = {
  maxCalls: { min: 1, max: 100_000, default: 500 },
  maxSessionMinutes: { min: 1, max: 10_080, default: 480 },
} as const;

export const mcpSchema = z.strictObject({
  maxCalls: ranged(MCP_RANGES.maxCalls.min, MCP_RANGES.maxCalls.max).default(MCP_RANGES.maxCalls.default),
  maxSessionMinutes: ranged(MCP_RANGES.maxSessionMinutes.min, MCP_RANGES.maxSessionMinutes.max).default(
    MCP_RANGES.maxSessionMinutes.default,
  ),
});

/**
 * `[checkpoints]`: the workspace's state recorded before every agent task (and agent exec outside
 * a task), kept in the sandbox's state dir. `.gitignore` files are honoured; `exclude` adds
 * gitignore-style patterns; a file over `maxFileSizeMB` is reported as skipped, never stored.
 * User config only: the workspace (which the agent can edit) may not shrink what is recorded.
 */
export const checkpointsSchema = z.strictObject({
  enabled: z.boolean({ error: 'must be true or false' }).default(true),
  exclude: z
    .array(z.string({ error: 'must be a gitignore-style pattern string' }).min(1).max(1000))
    .max(1000)
    .default([]),
  maxFileSizeMB: ranged(1, 10_000).default(50),
});

export const configSchema = z.strictObject({
  policy: policySchema.prefault({}),
  workspace: workspaceSchema.prefault({}),
  guardrails: guardrailsSchema.prefault({}),
  pricing: z.record(z.string(), modelPriceSchema).default({}),
  vm: vmSchema.prefault({}),
  agent: agentSchema.prefault({}),
  egress: egressSchema.prefault({}),
  guest: guestSchema.prefault({}),
  control: controlSchema.prefault({}),
  dashboard: dashboardSchema.prefault({}),
  channels: z.strictObject({ telegram: telegramSchema.prefault({}) }).prefault({}),
  notifications: notificationsSchema.prefault({}),
  mcp: mcpSchema.prefault({}),
  checkpoints: checkpointsSchema.prefault({}),
  forward: forwardSchema.prefault({}),
  cache: cacheSchema.prefault({}),
});

/** One config file, validated, every default filled in. */
export type CoworkConfig = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type PolicyConfig = z.infer<typeof policySchema>;
export type GuardrailsConfig = z.infer<typeof guardrailsSchema>;
export type ModelPrice = z.infer<typeof modelPriceSchema>;
export type VmConfig = z.infer<typeof vmSchema>;
export type AgentConfig = z.infer<typeof agentSchema>;
export type EgressConfig = z.infer<typeof egressSchema>;
export type GuestConfig = z.infer<typeof guestSchema>;
export type WorkspaceConfig = z.infer<typeof workspaceSchema>;
export type ControlConfig = z.infer<typeof controlSchema>;
export type DashboardConfig = z.infer<typeof dashboardSchema>;
export type TelegramConfig = z.infer<typeof telegramSchema>;
export type McpConfig = z.infer<typeof mcpSchema>;
export type CheckpointsConfig = z.infer<typeof checkpointsSchema>;
export type ForwardConfig = z.infer<typeof forwardSchema>;
export type CacheConfig = z.infer<typeof cacheSchema>;

/** Rules that came from the workspace's own `.cowork/config.toml`: they may only tighten. */
export interface WorkspacePolicy {
  ask: string[];
  deny: string[];
  blockedPatterns: string[];
}

/** What loadConfig returns: the user file (tightened by the workspace) plus the workspace's own rules. */
export interface ResolvedConfig extends CoworkConfig {
  workspacePolicy: WorkspacePolicy;
}
