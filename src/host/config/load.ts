import { lstatSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import type { z } from 'zod';
import { CoworkError } from '../errors.js';
import { hostPaths } from '../paths.js';
import {
  type CoworkConfig,
  configSchema,
  GUARDRAIL_RANGES,
  type GuardrailKey,
  type ResolvedConfig,
} from './schema.js';

const MAX_CONFIG_BYTES = 1024 * 1024;

export interface LoadConfigOptions {
  /** `--config FILE`: replaces `<configDir>/config.toml` (and must exist). */
  configFile?: string;
  /** Host path of the workspace; its `.cowork/config.toml` may only tighten. */
  workspace?: string;
  env?: NodeJS.ProcessEnv;
}

export interface LoadedConfig {
  config: ResolvedConfig;
  warnings: string[];
  sources: { user?: string; workspace?: string };
}

function keyPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const k of path) {
    if (typeof k === 'number') out += `[${k}]`;
    else {
      const s = String(k);
      const part = /^[A-Za-z_][A-Za-z0-9_-]*$/.test(s) ? s : JSON.stringify(s);
      out += out ? `.${part}` : part;
    }
  }
  return out;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = input;
  for (const k of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

function showValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) return 'an array';
  if (v && typeof v === 'object') return 'a table';
  return String(v);
}

/** Turn zod issues into one message that names the file, each key path, the value and the allowed range. */
export function formatConfigIssues(
  file: string,
  issues: readonly z.core.$ZodIssue[],
  input: unknown,
): string {
  const lines = issues.map((iss) => {
    if (iss.code === 'unrecognized_keys') {
      const keys = iss.keys.map((k) => keyPath([...iss.path, k]));
      return `unknown key${keys.length > 1 ? 's' : ''} ${keys.join(', ')} (check the spelling; see docs for the allowed keys)`;
    }
    const where = keyPath(iss.path) || '(top level)';
    const value = valueAt(input, iss.path);
    if (value === undefined) return `${where} is missing: it ${iss.message}`;
    return `${where} = ${showValue(value)} ${iss.message}`;
  });
  return lines.length === 1 ? `config ${file}: ${lines[0]}` : `config ${file}:\n  ${lines.join('\n  ')}`;
}

/** Validate an already-parsed TOML object; throws CoworkError('invalidArgument'). */
export function validateConfig(
  raw: unknown,
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): CoworkConfig {
  const res = configSchema.safeParse(raw);
  if (!res.success) throw new CoworkError('invalidArgument', formatConfigIssues(file, res.error.issues, raw));
  if (res.data.egress.testResolve !== undefined && env.COWORK_VM_TEST_RESOLVE !== '1') {
    throw new CoworkError(
      'invalidArgument',
      `config ${file}: egress.testResolve is only for tests and is honoured only with COWORK_VM_TEST_RESOLVE=1; remove the key`,
    );
  }
  return res.data;
}

/** Parse TOML text; a syntax error names the file and the line. */
export function parseConfigText(text: string, file: string): Record<string, unknown> {
  try {
    return parseToml(text) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof TomlError) {
      const first = err.message.split('\n')[0] ?? 'invalid TOML';
      throw new CoworkError(
        'invalidArgument',
        `config ${file}: TOML syntax error at line ${err.line}, column ${err.column}: ${first}`,
        err,
      );
    }
    throw CoworkError.from(err, 'invalidArgument', `config ${file}`);
  }
}

function readConfigFile(file: string, required: boolean): string | undefined {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(file);
  } catch (err) {
    if (!required && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CoworkError(
      'notFound',
      `config ${file} cannot be read (${(err as Error).message}); check the path given to --config`,
      err,
    );
  }
  if (!st.isFile()) throw new CoworkError('invalidArgument', `config ${file} is not a regular file`);
  if (st.size > MAX_CONFIG_BYTES)
    throw new CoworkError('invalidArgument', `config ${file} is larger than 1 MiB`);
  return readFileSync(file, 'utf8');
}

/**
 * The workspace is writable by the agent: a `.cowork` or `config.toml` that is a symlink could
 * make us read (and quote in errors) a host file outside it, so it must be a plain file.
 */
function refuseSymlinks(...paths: string[]): void {
  for (const p of paths) {
    let link = false;
    try {
      link = lstatSync(p).isSymbolicLink();
    } catch {
      continue;
    }
    if (link)
      throw new CoworkError(
        'invalidArgument',
        `config ${p} is a symbolic link; the workspace config must be a regular file inside the workspace`,
      );
  }
}

const IGNORED_WORKSPACE_SECTIONS = [
  'vm',
  'guest',
  'control',
  'dashboard',
  'channels',
  'pricing',
  'agent',
  'notifications',
  'mcp',
  'checkpoints',
  'forward',
  'cache',
] as const;

/** Apply a workspace config on top of the user's: it may only add deny/ask rules and lower limits. */
export function applyWorkspaceConfig(
  user: CoworkConfig,
  wsRaw: Record<string, unknown>,
  ws: CoworkConfig,
  file: string,
): { config: ResolvedConfig; warnings: string[] } {
  const warnings: string[] = [];
  const config: ResolvedConfig = {
    ...user,
    guardrails: { ...user.guardrails },
    egress: { ...user.egress, deny: [...user.egress.deny] },
    workspacePolicy: { ask: [], deny: [], blockedPatterns: [] },
  };
  const rawPolicy = (wsRaw.policy ?? {}) as Record<string, unknown>;
  if ('allow' in rawPolicy && ws.policy.allow.length > 0)
    warnings.push(
      `${file}: policy.allow is ignored (a workspace config may only add deny/ask rules): ${ws.policy.allow.join(', ')}`,
    );
  config.workspacePolicy = {
    ask: ws.policy.ask,
    deny: ws.policy.deny,
    blockedPatterns: ws.policy.blockedPatterns,
  };

  const rawGuard = (wsRaw.guardrails ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(GUARDRAIL_RANGES) as GuardrailKey[]) {
    if (!(key in rawGuard)) continue;
    const mine = ws.guardrails[key];
    if (mine < user.guardrails[key]) config.guardrails[key] = mine;
    else if (mine > user.guardrails[key])
      warnings.push(
        `${file}: guardrails.${key} = ${mine} is ignored (higher than ${user.guardrails[key]}; a workspace config may only lower limits)`,
      );
  }

  // Protected paths: a workspace config may add entries, never remove one.
  const rawWs = (wsRaw.workspace ?? {}) as Record<string, unknown>;
  config.workspace = { ...user.workspace, protect: [...user.workspace.protect] };
  if ('protect' in rawWs)
    for (const p of ws.workspace.protect)
      if (!config.workspace.protect.includes(p)) config.workspace.protect.push(p);
  if ('caseInsensitive' in rawWs && ws.workspace.caseInsensitive === true)
    config.workspace.caseInsensitive = true;

  const rawEgress = (wsRaw.egress ?? {}) as Record<string, unknown>;
  if ('allow' in rawEgress && ws.egress.allow.length > 0)
    warnings.push(
      `${file}: egress.allow is ignored (a workspace config may only add denied hosts): ${ws.egress.allow.join(', ')}`,
    );
  if ('allowAll' in rawEgress && ws.egress.allowAll)
    warnings.push(`${file}: egress.allowAll is ignored (a workspace config may only add denied hosts)`);
  for (const d of ws.egress.deny) if (!config.egress.deny.includes(d)) config.egress.deny.push(d);
  if (ws.egress.ask) config.egress.ask = true;
  if ('testResolve' in rawEgress)
    warnings.push(`${file}: egress.testResolve is ignored in a workspace config`);
  if ('credentials' in rawEgress)
    warnings.push(`${file}: egress.credentials is ignored (only the user config may add credentials)`);

  for (const section of IGNORED_WORKSPACE_SECTIONS)
    if (section in wsRaw) warnings.push(`${file}: [${section}] is ignored (only the user config may set it)`);
  return { config, warnings };
}

/**
 * Load the user config (`--config FILE` or `<configDir>/config.toml`; absent = defaults) and the
 * workspace config `<workspace>/.cowork/config.toml`, validate both, and merge so the workspace
 * only tightens. Throws CoworkError('invalidArgument') naming the file, key, value and range.
 */
export function loadConfig(opts: LoadConfigOptions = {}): LoadedConfig {
  const env = opts.env ?? process.env;
  const userFile = opts.configFile ?? join(hostPaths(env).configDir, 'config.toml');
  const sources: LoadedConfig['sources'] = {};
  const userText = readConfigFile(userFile, opts.configFile !== undefined);
  let user: CoworkConfig;
  if (userText === undefined) user = validateConfig({}, userFile, env);
  else {
    sources.user = userFile;
    user = validateConfig(parseConfigText(userText, userFile), userFile, env);
  }
  const empty: ResolvedConfig = { ...user, workspacePolicy: { ask: [], deny: [], blockedPatterns: [] } };
  if (opts.workspace === undefined) return { config: empty, warnings: [], sources };

  const wsFile = join(opts.workspace, '.cowork', 'config.toml');
  refuseSymlinks(join(opts.workspace, '.cowork'), wsFile);
  const wsText = readConfigFile(wsFile, false);
  if (wsText === undefined) return { config: empty, warnings: [], sources };
  sources.workspace = wsFile;
  const wsRaw = parseConfigText(wsText, wsFile);
  // testResolve in a workspace file is ignored (with a warning), never an error or honoured.
  const ws = validateConfig(wsRaw, wsFile, { ...env, COWORK_VM_TEST_RESOLVE: '1' });
  const { config, warnings } = applyWorkspaceConfig(user, wsRaw, ws, wsFile);
  return { config, warnings, sources };
}

/** Defaults only (no files): handy for tests and for `policy check` without a config. */
export function defaultConfig(): ResolvedConfig {
  return { ...configSchema.parse({}), workspacePolicy: { ask: [], deny: [], blockedPatterns: [] } };
}
