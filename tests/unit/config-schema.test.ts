import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_MODEL,
  defaultConfig,
  loadConfig,
  parseConfigText,
  validateConfig,
} from '../../src/host/config/index.js';
import { CoworkError } from '../../src/host/errors.js';

const FILE = '~/.config/cowork-vm/config.toml';

function errorOf(toml: string, env: NodeJS.ProcessEnv = {}): CoworkError {
  try {
    validateConfig(parseConfigText(toml, FILE), FILE, env);
  } catch (err) {
    expect(err).toBeInstanceOf(CoworkError);
    expect((err as CoworkError).code).toBe('invalidArgument');
    return err as CoworkError;
  }
  throw new Error(`expected a config error for:\n${toml}`);
}

function ok(toml: string, env: NodeJS.ProcessEnv = {}) {
  return validateConfig(parseConfigText(toml, FILE), FILE, env);
}

describe('config defaults', () => {
  it('fills every default', () => {
    const c = defaultConfig();
    expect(c.guardrails).toEqual({
      maxTokensPerTask: 100_000,
      maxCostPerTask: 1,
      maxIterationsPerTask: 50,
      maxFileSizeMB: 50,
      approvalTimeoutSeconds: 300,
    });
    expect(c.vm).toEqual({
      cpus: 2,
      memoryMiB: 1024,
      image: 'base',
      accel: 'auto',
      share: 'auto',
      warm: false,
    });
    expect(c.agent.model).toBe(DEFAULT_MODEL);
    expect(c.egress).toEqual({
      allow: [],
      deny: [],
      ask: false,
      allowAll: false,
      maxConnections: 256,
      connectTimeoutSeconds: 10,
      idleTimeoutSeconds: 60,
      credentials: [],
    });
    expect(c.guest).toEqual({ trustHostCAs: true, extraCAs: [] });
    expect(c.control.maxFrameBytes).toBe(1024 * 1024);
    expect(c.control.listen).toBeUndefined();
    expect(c.channels.telegram).toMatchObject({ enabled: false, mode: 'pairing', rateLimitPerMinute: 30 });
    expect(c.policy).toEqual({ allow: [], ask: [], deny: [], blockedPatterns: [] });
    expect(c.workspacePolicy).toEqual({ ask: [], deny: [], blockedPatterns: [] });
  });
});

const BOUNDS: [string, string, number, number][] = [
  ['guardrails', 'maxTokensPerTask', 1000, 10_000_000],
  ['guardrails', 'maxCostPerTask', 0.01, 100],
  ['guardrails', 'maxIterationsPerTask', 5, 500],
  ['guardrails', 'maxFileSizeMB', 1, 500],
  ['guardrails', 'approvalTimeoutSeconds', 10, 3600],
  ['vm', 'cpus', 1, 16],
  ['vm', 'memoryMiB', 256, 16384],
  ['control', 'maxFrameBytes', 1024, 64 * 1024 * 1024],
  ['egress', 'maxConnections', 1, 65_536],
  ['egress', 'connectTimeoutSeconds', 1, 600],
  ['egress', 'idleTimeoutSeconds', 1, 3600],
  ['channels.telegram', 'rateLimitPerMinute', 1, 600],
];

describe('config ranges: every boundary', () => {
  for (const [section, key, min, max] of BOUNDS) {
    const isInt = Number.isInteger(min);
    const step = isInt ? 1 : 0.001;
    it(`${section}.${key} accepts ${min} and ${max}`, () => {
      const get = (c: ReturnType<typeof ok>) =>
        section.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], c) as Record<
          string,
          number
        >;
      expect(get(ok(`[${section}]\n${key} = ${min}`))[key]).toBe(min);
      expect(get(ok(`[${section}]\n${key} = ${max}`))[key]).toBe(max);
    });
    it(`${section}.${key} rejects ${min} - step and ${max} + step, naming key, value and range`, () => {
      const below = Number((min - step).toFixed(3));
      const above = Number((max + step).toFixed(3));
      for (const v of [below, above]) {
        const e = errorOf(`[${section}]\n${key} = ${v}`);
        expect(e.message).toContain(`${section}.${key} = ${v} is out of range (`);
        expect(e.message).toContain(FILE);
      }
    });
    it(`${section}.${key} rejects a string`, () => {
      expect(errorOf(`[${section}]\n${key} = "12"`).message).toMatch(
        new RegExp(`${key} = "12" must be a (whole )?number in`),
      );
    });
  }

  it('matches the documented example message exactly', () => {
    expect(errorOf('[guardrails]\nmaxIterationsPerTask = 1000').message).toBe(
      `config ${FILE}: guardrails.maxIterationsPerTask = 1000 is out of range (5–500)`,
    );
  });

  it('rejects fractions where whole numbers are required', () => {
    expect(errorOf('[guardrails]\nmaxIterationsPerTask = 5.5').message).toContain(
      'must be a whole number in 5–500',
    );
  });

  it('lists several problems at once', () => {
    const m = errorOf('[vm]\ncpus = 0\nmemoryMiB = 99999').message;
    expect(m).toContain('vm.cpus = 0');
    expect(m).toContain('vm.memoryMiB = 99999');
  });
});

describe('config types, keys and syntax', () => {
  it('names unknown keys at every level', () => {
    expect(errorOf('colour = 1').message).toContain('unknown key colour');
    expect(errorOf('[guardrails]\nmaxTokens = 5000').message).toContain('unknown key guardrails.maxTokens');
    expect(errorOf('[vm]\ncpu = 2\nram = 1').message).toContain('unknown keys vm.cpu, vm.ram');
    expect(errorOf('[channels.slack]\nenabled = true').message).toContain('channels.slack');
  });

  it('rejects wrong types and enum values', () => {
    expect(errorOf('[vm]\naccel = "xen"').message).toContain(
      'vm.accel = "xen" must be one of auto, kvm, hvf, tcg',
    );
    expect(errorOf('[vm]\nshare = "nfs"').message).toContain('must be one of auto, virtiofs, 9p');
    expect(errorOf('[egress]\nask = "yes"').message).toContain('egress.ask = "yes" must be true or false');
    expect(errorOf('[policy]\nallow = "Bash(ls)"').message).toContain('policy.allow');
    expect(errorOf('policy = 3').message).toContain('policy = 3');
    expect(errorOf('[vm]\nimage = "../etc"').message).toContain('vm.image');
  });

  it('names an invalid regex in blockedPatterns and never treats it as a substring', () => {
    const m = errorOf('[policy]\nblockedPatterns = ["ok", "(unclosed"]').message;
    expect(m).toContain('policy.blockedPatterns[1] = "(unclosed" is not a valid regular expression');
  });

  it('rejects malformed rules', () => {
    expect(errorOf('[policy]\ndeny = ["Bash(rm"]').message).toContain(
      'policy.deny[0] = "Bash(rm" is not a rule',
    );
  });

  it('reports TOML syntax errors with file and line', () => {
    expect(() => parseConfigText('[vm]\ncpus = = 2\n', FILE)).toThrowError(
      /config .*config\.toml: TOML syntax error at line 2/,
    );
  });

  it('validates pricing tables', () => {
    const c = ok('[pricing."claude-x-1"]\ninput = 3\noutput = 15\ncacheRead = 0.3');
    expect(c.pricing['claude-x-1']).toEqual({ input: 3, output: 15, cacheRead: 0.3 });
    expect(errorOf('[pricing."claude-x-1"]\ninput = 3').message).toContain(
      'pricing.claude-x-1.output is missing',
    );
    expect(errorOf('[pricing.m]\ninput = -1\noutput = 1').message).toContain(
      'pricing.m.input = -1 must not be negative',
    );
  });

  it('reads [[egress.credentials]] and names the key, the value and what is allowed when one is wrong', () => {
    const rule =
      '[[egress.credentials]]\nhost = "api.github.com"\nheader = "Authorization"\nsecret = "github"\n';
    expect(
      ok(`${rule}value = "Bearer {secret}"\nmethods = ["GET"]\npaths = ["/repos/me/*"]`).egress.credentials,
    ).toEqual([
      {
        host: 'api.github.com',
        header: 'Authorization',
        value: 'Bearer {secret}',
        secret: 'github',
        methods: ['GET'],
        paths: ['/repos/me/*'],
      },
    ]);
    expect(errorOf(`${rule}value = "Bearer"`).message).toContain(
      'egress.credentials[0].value = "Bearer" must contain {secret}',
    );
    expect(errorOf(`${rule}value = "{secret}"\nmethods = ["FETCH"]`).message).toMatch(
      /egress\.credentials\[0\]\.methods\[0\] = "FETCH" must be one of GET, HEAD, POST/,
    );
    expect(errorOf(`${rule.replace('api.github.com', '*.github.com')}value = "{secret}"`).message).toContain(
      'egress.credentials[0].host = "*.github.com" is not a lowercase host name',
    );
    expect(errorOf(`${rule}value = "{secret}"\npaths = ["repos"]`).message).toContain(
      'is not a path pattern',
    );
    expect(errorOf(`${rule}value = "{secret}"\n${rule}value = "{secret}"`).message).toContain(
      'a second time',
    );
  });

  it('reads [guest] and refuses a relative extraCAs path', () => {
    expect(ok('[guest]\ntrustHostCAs = false\nextraCAs = ["/etc/corp.pem"]').guest).toEqual({
      trustHostCAs: false,
      extraCAs: ['/etc/corp.pem'],
    });
    expect(errorOf('[guest]\nextraCAs = ["corp.pem"]').message).toContain(
      'guest.extraCAs[0] = "corp.pem" must be an absolute path',
    );
    expect(errorOf('[guest]\ntrustHostCAs = "no"').message).toContain(
      'guest.trustHostCAs = "no" must be true or false',
    );
  });

  it('guards egress.testResolve behind COWORK_VM_TEST_RESOLVE=1', () => {
    const t = '[egress.testResolve]\n"api.example.com" = "127.0.0.1"';
    expect(errorOf(t).message).toContain('egress.testResolve');
    expect(ok(t, { COWORK_VM_TEST_RESOLVE: '1' }).egress.testResolve).toEqual({
      'api.example.com': '127.0.0.1',
    });
    expect(
      errorOf('[egress.testResolve]\n"a.com" = "not-an-ip"', { COWORK_VM_TEST_RESOLVE: '1' }).message,
    ).toContain('is not an IP address');
  });

  it('validates egress host patterns', () => {
    expect(ok('[egress]\nallow = ["example.com", "*.npmjs.org", "api.x.io:443"]').egress.allow).toHaveLength(
      3,
    );
    expect(errorOf('[egress]\nallow = ["http://example.com/"]').message).toContain('egress.allow[0]');
  });

  it('refuses an egress.allow entry that is or covers a public suffix, naming the key and the entry', () => {
    for (const [entry, at] of [
      ['.com', 0],
      ['*.com', 0],
      ['*.co.uk', 0],
      ['*.github.io', 0],
      ['.s3.amazonaws.com:443', 0],
    ] as const) {
      const msg = errorOf(`[egress]\nallow = ["example.com", ${JSON.stringify(entry)}]`).message;
      expect(msg, entry).toContain(`egress.allow[${at + 1}] = ${JSON.stringify(entry)} is refused`);
      expect(msg).toContain('public suffix');
      expect(msg).toContain('allowAll = true');
    }
    // Deny entries may be broad; a workspace config may add them.
    expect(ok('[egress]\ndeny = [".com", "*.github.io"]').egress.deny).toEqual(['.com', '*.github.io']);
  });

  it('egress.allowAll is an explicit boolean, off by default', () => {
    expect(ok('').egress.allowAll).toBe(false);
    expect(ok('[egress]\nallowAll = true').egress.allowAll).toBe(true);
    expect(errorOf('[egress]\nallowAll = "yes"').message).toContain(
      'egress.allowAll = "yes" must be true or false',
    );
  });

  it('control: loopback by default, remote needs allowRemote and tls', () => {
    expect(ok('[control]\nlisten = "127.0.0.1:7077"').control.listen).toBe('127.0.0.1:7077');
    expect(ok('[control]\nlisten = "[::1]:7077"').control.listen).toBe('[::1]:7077');
    expect(errorOf('[control]\nlisten = "0.0.0.0:7077"').message).toContain('allowRemote');
    expect(errorOf('[control]\nlisten = "0.0.0.0:7077"\nallowRemote = true').message).toContain(
      'control.tls',
    );
    expect(
      ok('[control]\nlisten = "0.0.0.0:7077"\nallowRemote = true\ntls = { cert = "c.pem", key = "k.pem" }')
        .control.tls,
    ).toEqual({ cert: 'c.pem', key: 'k.pem' });
    expect(errorOf('[control]\nlisten = "127.0.0.1:70000"').message).toContain('port above 65535');
    expect(errorOf('[control]\nlisten = "localhost"').message).toContain('HOST:PORT');
  });

  it('dashboard: on, on a free port, by default; keys checked like every other', () => {
    expect(ok('').dashboard).toEqual({ enabled: true, port: 0 });
    expect(ok('[dashboard]\nenabled = false\nport = 7080').dashboard).toEqual({ enabled: false, port: 7080 });
    expect(errorOf('[dashboard]\nport = 70000').message).toBe(
      `config ${FILE}: dashboard.port = 70000 is out of range (0–65,535)`,
    );
    expect(errorOf('[dashboard]\nport = 80.5').message).toContain(
      'dashboard.port = 80.5 must be a whole number',
    );
    expect(errorOf('[dashboard]\nenabled = "yes"').message).toContain(
      'dashboard.enabled = "yes" must be true or false',
    );
    expect(errorOf('[dashboard]\nhost = "0.0.0.0"').message).toContain('unknown key dashboard.host');
  });

  it('telegram: open needs openConfirmed, allowlist needs ids', () => {
    expect(errorOf('[channels.telegram]\nmode = "open"').message).toContain('openConfirmed');
    expect(ok('[channels.telegram]\nmode = "open"\nopenConfirmed = true').channels.telegram.mode).toBe(
      'open',
    );
    expect(errorOf('[channels.telegram]\nmode = "allowlist"').message).toContain('allowlist');
    expect(
      ok('[channels.telegram]\nmode = "allowlist"\nallowlist = [123, "456"]').channels.telegram.allowlist,
    ).toEqual([123, 456]);
  });
});

describe('loadConfig', () => {
  let dir = '';
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = '';
  });

  function setup(user: string | undefined, ws: string | undefined) {
    dir = mkdtempSync(join(tmpdir(), 'cowork-config-'));
    const cfgDir = join(dir, 'cfg');
    const workspace = join(dir, 'ws');
    mkdirSync(cfgDir);
    mkdirSync(join(workspace, '.cowork'), { recursive: true });
    if (user !== undefined) writeFileSync(join(cfgDir, 'config.toml'), user);
    if (ws !== undefined) writeFileSync(join(workspace, '.cowork', 'config.toml'), ws);
    return { env: { COWORK_VM_CONFIG_DIR: cfgDir, HOME: dir }, workspace, cfgDir };
  }

  it('uses defaults when no file exists', () => {
    const { env } = setup(undefined, undefined);
    const r = loadConfig({ env });
    expect(r.config.guardrails.maxIterationsPerTask).toBe(50);
    expect(r.sources).toEqual({});
    expect(r.warnings).toEqual([]);
  });

  it('reads <configDir>/config.toml, and --config overrides it', () => {
    const { env, cfgDir } = setup('[vm]\ncpus = 4', undefined);
    expect(loadConfig({ env }).config.vm.cpus).toBe(4);
    const other = join(cfgDir, 'other.toml');
    writeFileSync(other, '[vm]\ncpus = 8');
    const r = loadConfig({ env, configFile: other });
    expect(r.config.vm.cpus).toBe(8);
    expect(r.sources.user).toBe(other);
  });

  it('[notifications] enabled: default true, a boolean, and only the user config sets it', () => {
    const { env, workspace } = setup('[notifications]\nenabled = false', '[notifications]\nenabled = true');
    const r = loadConfig({ env, workspace });
    expect(r.config.notifications.enabled).toBe(false);
    expect(r.warnings.some((w) => w.includes('[notifications] is ignored'))).toBe(true);
    expect(defaultConfig().notifications.enabled).toBe(true);
    expect(errorOf('[notifications]\nenabled = "yes"').message).toMatch(
      /notifications\.enabled.*must be true or false/,
    );
  });

  it('a missing --config file is an error, not defaults', () => {
    const { env, cfgDir } = setup(undefined, undefined);
    expect(() => loadConfig({ env, configFile: join(cfgDir, 'nope.toml') })).toThrowError(
      /nope\.toml cannot be read/,
    );
  });

  it('workspace config only tightens', () => {
    const { env, workspace } = setup(
      '[policy]\nallow = ["Bash(ls:*)"]\n[guardrails]\nmaxIterationsPerTask = 40\nmaxCostPerTask = 2\n[egress]\nallow = ["a.com"]',
      [
        '[policy]',
        'allow = ["Bash(curl:*)"]',
        'deny = ["Bash(git push:*)"]',
        'ask = ["Bash(npm publish)"]',
        'blockedPatterns = ["\\\\bnc\\\\s+-l"]',
        '[guardrails]',
        'maxIterationsPerTask = 20',
        'maxCostPerTask = 50',
        '[egress]',
        'allow = ["evil.com"]',
        'deny = ["tracker.com"]',
        'ask = true',
        'allowAll = true',
        '[vm]',
        'cpus = 16',
        '[control]',
        'listen = "127.0.0.1:1"',
        '[dashboard]',
        'port = 8080',
      ].join('\n'),
    );
    const r = loadConfig({ env, workspace });
    expect(r.config.policy.allow).toEqual(['Bash(ls:*)']);
    expect(r.config.workspacePolicy).toEqual({
      ask: ['Bash(npm publish)'],
      deny: ['Bash(git push:*)'],
      blockedPatterns: ['\\bnc\\s+-l'],
    });
    expect(r.config.guardrails.maxIterationsPerTask).toBe(20);
    expect(r.config.guardrails.maxCostPerTask).toBe(2);
    expect(r.config.egress.allow).toEqual(['a.com']);
    expect(r.config.egress.deny).toEqual(['tracker.com']);
    expect(r.config.egress.ask).toBe(true);
    expect(r.config.vm.cpus).toBe(2);
    expect(r.config.control.listen).toBeUndefined();
    const w = r.warnings.join('\n');
    expect(w).toContain('policy.allow is ignored');
    expect(w).toContain('guardrails.maxCostPerTask = 50 is ignored');
    expect(w).toContain('egress.allow is ignored');
    expect(r.config.egress.allowAll).toBe(false);
    expect(w).toContain('egress.allowAll is ignored');
    expect(w).toContain('[vm] is ignored');
    expect(w).toContain('[control] is ignored');
    // The agent can write the workspace: it must not choose where the dashboard listens.
    expect(r.config.dashboard.port).toBe(0);
    expect(w).toContain('[dashboard] is ignored');
    expect(r.sources.workspace).toBe(join(workspace, '.cowork', 'config.toml'));
  });

  it('an invalid workspace config is an error naming that file', () => {
    const { env, workspace } = setup(undefined, '[guardrails]\nmaxIterationsPerTask = 1');
    expect(() => loadConfig({ env, workspace })).toThrowError(
      /\.cowork\/config\.toml: guardrails\.maxIterationsPerTask = 1 is out of range/,
    );
  });

  it('a workspace config that is a symlink (to a host file) is refused', () => {
    const { env, workspace } = setup(undefined, undefined);
    const secret = join(dir, 'secret.toml');
    writeFileSync(secret, 'token = "hunter2"');
    symlinkSync(secret, join(workspace, '.cowork', 'config.toml'));
    expect(() => loadConfig({ env, workspace })).toThrowError(/is a symbolic link/);
    try {
      loadConfig({ env, workspace });
    } catch (err) {
      expect((err as Error).message).not.toContain('hunter2');
    }
  });

  it('a .cowork folder that is a symlink is refused', () => {
    const { env, workspace } = setup(undefined, undefined);
    rmSync(join(workspace, '.cowork'), { recursive: true });
    mkdirSync(join(dir, 'elsewhere'));
    writeFileSync(join(dir, 'elsewhere', 'config.toml'), '');
    symlinkSync(join(dir, 'elsewhere'), join(workspace, '.cowork'));
    expect(() => loadConfig({ env, workspace })).toThrowError(/\.cowork is a symbolic link/);
  });

  it('workspace testResolve is ignored with a warning, never honoured', () => {
    const { env, workspace } = setup(undefined, '[egress.testResolve]\n"a.com" = "127.0.0.1"');
    const r = loadConfig({ env, workspace });
    expect(r.config.egress.testResolve).toBeUndefined();
    expect(r.warnings.join()).toContain('testResolve is ignored');
  });
});
