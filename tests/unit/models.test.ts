import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callModel, DEFAULT_MODEL, DEFAULT_RETRY } from '../../src/host/agent/index.js';
import { availableModels, listModels } from '../../src/host/agent/models.js';
import { DEFAULT_MODEL as CONFIG_DEFAULT_MODEL } from '../../src/host/config/index.js';
import { CoworkError } from '../../src/host/errors.js';
import { priceFor, UNPRICED_ON_PURPOSE } from '../../src/host/guardrails/pricing.js';
import { AnthropicApiStandIn, reply, text } from '../helpers/anthropic-api.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const require = createRequire(import.meta.url);
// The installed SDK's own data: read from its files (they are not part of its exports map).
const SDK_DIR = dirname(require.resolve('@anthropic-ai/sdk'));
const DEPRECATED: Record<string, string> = require(
  join(SDK_DIR, 'internal/data/deprecated-models.js'),
).DEPRECATED_MODELS;
const MODEL_UNION = (() => {
  const dts = readFileSync(join(SDK_DIR, 'resources/messages/messages.d.ts'), 'utf8');
  const line = /export type Model = ([^;]+);/.exec(dts)?.[1] ?? '';
  return [...line.matchAll(/'([^']+)'/g)].map((m) => m[1] as string);
})();
/** Every model id the README names (recommendations and examples alike). */
const README_MODELS = [
  ...new Set(readFileSync(join(ROOT, 'README.md'), 'utf8').match(/\bclaude-[a-z]+(?:-[0-9]+)+\b/g) ?? []),
];

describe('the default model', () => {
  it('is one model for config and the agent', () => {
    expect(DEFAULT_MODEL).toBe(CONFIG_DEFAULT_MODEL);
  });

  it("is in the installed SDK's model list", () => {
    expect(MODEL_UNION.length).toBeGreaterThan(5);
    expect(MODEL_UNION).toContain(DEFAULT_MODEL);
  });

  it("is NOT in the SDK's deprecated-models data (fails after an SDK update retires it)", () => {
    expect(Object.keys(DEPRECATED).length).toBeGreaterThan(0);
    expect(
      DEPRECATED[DEFAULT_MODEL],
      `${DEFAULT_MODEL} reaches end of life on ${DEPRECATED[DEFAULT_MODEL]}`,
    ).toBeUndefined();
  });

  it('has a price, so a cost budget can run it', () => {
    expect(priceFor(DEFAULT_MODEL)).toBeDefined();
  });

  it('no model the README names is deprecated, and each has a price', () => {
    expect(README_MODELS).toContain(DEFAULT_MODEL);
    for (const m of README_MODELS) {
      expect(DEPRECATED[m], `README names ${m}, deprecated (end of life ${DEPRECATED[m]})`).toBeUndefined();
      expect(priceFor(m), `README names ${m}, which has no price`).toBeDefined();
    }
  });

  it("prices every model of the SDK's list except the few left out on purpose", () => {
    // Fails after an SDK update adds a model: refresh pricing.ts (and PRICES_AS_OF) then.
    const unpriced = MODEL_UNION.filter((m) => !priceFor(m));
    expect(unpriced.sort()).toEqual([...UNPRICED_ON_PURPOSE].sort());
  });
});

describe('the Models API through the real SDK (local stand-in)', () => {
  let api: AnthropicApiStandIn;
  let dir: string;
  beforeAll(async () => {
    api = await AnthropicApiStandIn.start({ apiKey: 'sk-ant-models', strictModels: true });
    dir = mkdtempSync(join(tmpdir(), 'models-'));
  });
  afterAll(async () => {
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists every page and marks known prices', async () => {
    const client = new Anthropic({ apiKey: api.apiKey, baseURL: api.baseURL });
    const before = api.requests.length;
    const models = await listModels(client, { pageSize: 2 });
    expect(models.map((m) => m.id)).toEqual(api.models.map((m) => m.id));
    const calls = api.requests.slice(before);
    expect(calls.map((r) => r.method + r.path)).toEqual(Array(3).fill('GET/v1/models'));
    const byId = Object.fromEntries(models.map((m) => [m.id, m]));
    expect(byId['claude-sonnet-5-5']?.price?.input).toBe(2);
    expect(byId['claude-haiku-4-5-20251001']?.price?.input).toBe(1); // dated id → alias price
    expect(byId['claude-fable-5-2']?.price).toBeUndefined();
    expect(byId['claude-opus-5-5']?.displayName).toBe('Claude Opus 5.5');
  });

  it('availableModels uses the key, the base URL and the config pricing overrides', async () => {
    const cfg = join(dir, 'config.toml');
    writeFileSync(
      cfg,
      '[agent]\nmodel = "claude-opus-5-5"\n\n[pricing."claude-fable-5-2"]\ninput = 8\noutput = 40\n',
    );
    const env = { ...process.env, ANTHROPIC_API_KEY: api.apiKey, ANTHROPIC_BASE_URL: api.baseURL };
    const { models, configuredModel } = await availableModels({ configFile: cfg, env });
    expect(configuredModel).toBe('claude-opus-5-5');
    expect(models.find((m) => m.id === 'claude-fable-5-2')?.price?.output).toBe(40);
  });

  it('a model the API does not know fails with one line naming it and how to choose another', async () => {
    api.enqueue(reply([text('never sent')]));
    const client = new Anthropic({ apiKey: api.apiKey, baseURL: api.baseURL });
    const err = await callModel({
      client,
      params: { model: 'claude-sonnet-4-5', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] },
      signal: new AbortController().signal,
      retry: DEFAULT_RETRY,
      sleep: async () => {},
    }).catch((e: unknown) => e);
    api.clear();
    expect(CoworkError.is(err, 'notFound')).toBe(true);
    const msg = (err as CoworkError).message;
    expect(msg.split('\n')).toHaveLength(1);
    expect(msg).toContain('"claude-sonnet-4-5"');
    expect(msg).toContain('--model');
    expect(msg).toContain('[agent] model');
  });
});
