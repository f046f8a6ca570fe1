import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyWorkspaceConfig, configSchema, GUARDRAIL_RANGES } from '../../src/host/config/index.js';
import {
  createPolicyEngine,
  type Decision,
  type Effect,
  POLICY_CONTEXTS,
  type PolicyRequest,
  RISKS,
} from '../../src/host/policy/index.js';

const SEV: Record<Effect, number> = { allow: 0, ask: 1, deny: 2 };

const WORDS = [
  'ls',
  'git',
  'status',
  'push',
  'npm',
  'test',
  'curl',
  'x',
  'sh',
  'bash',
  '-c',
  'rm',
  '-rf',
  '/',
  'sudo',
  'echo',
  'cat',
  '.env',
  'python3',
  'env',
  'A=1',
  'timeout',
  '5',
  '$HOME',
  '"a b"',
  "'q'",
  'xargs',
  'find',
  '.',
  '-exec',
  ';',
];
const OPS = [
  ' ',
  ' ',
  ' ',
  ' && ',
  ' || ',
  '; ',
  ' | ',
  ' & ',
  '\n',
  ' $(',
  ') ',
  ' `',
  '` ',
  ' > out ',
  ' <(',
  ') ',
];
const RULES = [
  'Bash',
  'Bash(ls:*)',
  'Bash(git status)',
  'Bash(git:*)',
  'Bash(npm test)',
  'Bash(curl:*)',
  'Bash(rm:*)',
  'Bash(echo:*)',
  'Bash(sh:*)',
  'Bash(cat .env)',
  'Bash(python3:*)',
  'Read(.env)',
  'Write(src/**)',
  'Edit(**)',
  'Read(**)',
  'write_file',
  'read_file',
  'browser_navigate',
];

const command = fc
  .array(fc.tuple(fc.constantFrom(...WORDS), fc.constantFrom(...OPS)), { minLength: 1, maxLength: 8 })
  .map((parts) =>
    parts
      .map(([w, o]) => w + o)
      .join('')
      .trim(),
  );
const request: fc.Arbitrary<PolicyRequest> = fc.oneof(
  command.map((c) => ({ kind: 'shell' as const, command: c })),
  fc.record({
    kind: fc.constant('tool' as const),
    tool: fc.constantFrom('write_file', 'read_file', 'browser_navigate', 'clipboard'),
    risk: fc.constantFrom(...RISKS),
    input: fc.constant({}),
    paths: fc.array(
      fc.record({
        path: fc.constantFrom('.env', 'src/a.ts', 'README.md', '../x', '/etc/passwd', '.git/config'),
        access: fc.constantFrom('read' as const, 'write' as const, 'edit' as const),
      }),
      { maxLength: 3 },
    ),
  }),
);
const rules = fc.subarray(RULES, { maxLength: 6 });
const ctxName = fc.constantFrom(...POLICY_CONTEXTS);

function decide(
  cfg: Parameters<typeof createPolicyEngine>[0],
  req: PolicyRequest,
  context: (typeof POLICY_CONTEXTS)[number],
): Decision {
  return createPolicyEngine(cfg).evaluate(req, { context, workspace: process.cwd() });
}

describe('monotonicity (fast-check)', () => {
  it('adding any deny or ask rule never makes a decision more permissive', () => {
    fc.assert(
      fc.property(
        rules,
        rules,
        rules,
        fc.constantFrom('deny', 'ask'),
        fc.constantFrom(...RULES),
        request,
        ctxName,
        (allow, ask, deny, kind, extra, req, context) => {
          const base = { policy: { allow, ask, deny } };
          const more = {
            policy: {
              allow,
              ask: kind === 'ask' ? [...ask, extra] : ask,
              deny: kind === 'deny' ? [...deny, extra] : deny,
            },
          };
          expect(SEV[decide(more, req, context).effect]).toBeGreaterThanOrEqual(
            SEV[decide(base, req, context).effect],
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a blocked pattern never makes a decision more permissive', () => {
    fc.assert(
      fc.property(
        rules,
        fc.constantFrom('curl', '\\brm\\b', 'git\\s+push', '^ls', 'x'),
        command,
        ctxName,
        (allow, pat, c, context) => {
          const req = { kind: 'shell' as const, command: c };
          const a = decide({ policy: { allow } }, req, context);
          const b = decide({ policy: { allow, blockedPatterns: [pat] } }, req, context);
          expect(SEV[b.effect]).toBeGreaterThanOrEqual(SEV[a.effect]);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('workspace rules never loosen, whatever they say', () => {
    fc.assert(
      fc.property(rules, rules, rules, request, ctxName, (allow, wsAsk, wsDeny, req, context) => {
        const user = { policy: { allow } };
        const withWs = { ...user, workspacePolicy: { ask: wsAsk, deny: wsDeny, blockedPatterns: ['zzz'] } };
        expect(SEV[decide(withWs, req, context).effect]).toBeGreaterThanOrEqual(
          SEV[decide(user, req, context).effect],
        );
      }),
      { numRuns: 300 },
    );
  });

  it('agent and gateway are never more permissive than local for shell commands', () => {
    fc.assert(
      fc.property(rules, command, (allow, c) => {
        const req = { kind: 'shell' as const, command: c };
        const local = SEV[decide({ policy: { allow } }, req, 'local').effect];
        expect(SEV[decide({ policy: { allow } }, req, 'agent').effect]).toBeGreaterThanOrEqual(local);
        expect(SEV[decide({ policy: { allow } }, req, 'gateway').effect]).toBeGreaterThanOrEqual(local);
      }),
      { numRuns: 200 },
    );
  });

  it('never throws and always explains, on arbitrary text', () => {
    const engine = createPolicyEngine({ policy: { allow: ['Bash(ls:*)'] } });
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), ctxName, (text, context) => {
        const d = engine.evaluate({ kind: 'shell', command: text }, { context, workspace: '/w' });
        expect(['allow', 'ask', 'deny']).toContain(d.effect);
        expect(d.reasons.length).toBeGreaterThan(0);
      }),
      { numRuns: 500 },
    );
  });
});

describe('workspace config never loosens limits (fast-check)', () => {
  const keys = Object.keys(GUARDRAIL_RANGES) as (keyof typeof GUARDRAIL_RANGES)[];
  const limit = (k: (typeof keys)[number]) => {
    const r = GUARDRAIL_RANGES[k];
    return r.int
      ? fc.integer({ min: r.min, max: r.max })
      : fc.double({ min: r.min, max: r.max, noNaN: true });
  };
  const guardrails = fc.record(
    Object.fromEntries(keys.map((k) => [k, limit(k)])) as {
      [K in (typeof keys)[number]]: fc.Arbitrary<number>;
    },
  );
  it('every merged limit is at most the user limit, and allow lists do not grow', () => {
    fc.assert(
      fc.property(
        guardrails,
        guardrails,
        fc.subarray(['a.com', 'b.org']),
        fc.subarray(RULES),
        (userG, wsG, egressAllow, wsAllow) => {
          const user = configSchema.parse({ guardrails: userG, policy: { allow: ['Bash(ls:*)'] } });
          const wsRaw = { guardrails: wsG, egress: { allow: egressAllow }, policy: { allow: wsAllow } };
          const ws = configSchema.parse(wsRaw);
          const { config } = applyWorkspaceConfig(user, wsRaw, ws, 'ws.toml');
          for (const k of keys) expect(config.guardrails[k]).toBeLessThanOrEqual(user.guardrails[k]);
          expect(config.policy.allow).toEqual(user.policy.allow);
          expect(config.egress.allow).toEqual(user.egress.allow);
        },
      ),
      { numRuns: 200 },
    );
  });
});
