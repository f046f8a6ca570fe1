import { CoworkError } from '../errors.js';
import type { Usage } from '../timeline/index.js';

/** USD per million tokens. */
export interface ModelPrice {
  input: number;
  output: number;
  /** Writing the prompt cache (5-minute TTL): 1.25 × input unless stated. */
  cacheWrite: number;
  /** Reading the prompt cache: 0.1 × input unless stated. */
  cacheRead: number;
  /**
   * Prices that apply to a whole call when its prompt (input + cache write + cache read) is
   * larger than `aboveInputTokens` (Sonnet 4 / 4.5 with the 1M-token context window; Haiku 5.5
   * above 100k prompt tokens).
   */
  longContext?: {
    aboveInputTokens: number;
    input: number;
    output: number;
    cacheWrite: number;
    cacheRead: number;
  };
}

/** A `[pricing."model-id"]` entry from config (validated by config's modelPriceSchema). */
export interface PriceOverride {
  input: number;
  output: number;
  cacheWrite?: number;
  cacheRead?: number;
}

/**
 * THE pricing table: Anthropic's published list prices in USD per million tokens, from the model
 * overview pages and the pricing page of the API docs (platform.claude.com/docs/…/models/*\/overview,
 * …/about-claude/pricing) as of 2026-12-01. Ids are the API aliases; dated ids such as
 * 'claude-sonnet-4-5-20250929' and '-latest' aliases resolve to them. Prices change: a user can
 * override any model, or add one, with `[pricing."id"]` in config.toml; `cowork-vm models` shows
 * which of the API's models have a price here.
 * Not modelled: the 1-hour cache TTL and batch discounts — estimates price every cache write at
 * the 5-minute rate. Where sources disagreed (Sonnet 5.5's cache read: $0.20 on its overview
 * page, $0.10 in later third-party trackers) the higher, published figure is kept: a budget
 * should over- rather than under-estimate.
 * Left out on purpose (UNPRICED_ON_PURPOSE) — add them with `[pricing."id"]` when needed.
 */
export const PRICES_AS_OF = '2026-12-01';

/** Models of the SDK's list with no complete published rate card found on PRICES_AS_OF. */
export const UNPRICED_ON_PURPOSE: readonly string[] = [
  'claude-fable-5-2',
  'claude-mythos-5-2',
  'claude-mythos-preview',
];

const SONNET_LONG = { aboveInputTokens: 200_000, input: 6, output: 22.5, cacheWrite: 7.5, cacheRead: 0.6 };
// Haiku 5.5 is priced by prompt length: every token of a call whose prompt exceeds 100k.
const HAIKU_5_5_LONG = {
  aboveInputTokens: 100_000,
  input: 0.5,
  output: 2.5,
  cacheWrite: 0.625,
  cacheRead: 0.05,
};
const FABLE_5_1 = { input: 10, output: 50, cacheWrite: 12.5, cacheRead: 0.25 };
const FABLE_5 = { input: 10, output: 50, cacheWrite: 12.5, cacheRead: 1 };
const OPUS_4_5_TO_5 = { input: 5, output: 25, cacheWrite: 6.25, cacheRead: 0.5 };
const OPUS_4 = { input: 15, output: 75, cacheWrite: 18.75, cacheRead: 1.5 };
const SONNET_4 = { input: 3, output: 15, cacheWrite: 3.75, cacheRead: 0.3 };

export const MODEL_PRICES: Readonly<Record<string, Readonly<ModelPrice>>> = Object.freeze({
  'claude-fable-5-1': FABLE_5_1,
  'claude-mythos-5-1': FABLE_5_1,
  'claude-fable-5': FABLE_5,
  'claude-mythos-5': FABLE_5,
  'claude-opus-5-5': { input: 4, output: 20, cacheWrite: 5, cacheRead: 0.2 },
  'claude-opus-5': OPUS_4_5_TO_5,
  'claude-opus-4-8': OPUS_4_5_TO_5,
  'claude-opus-4-7': OPUS_4_5_TO_5,
  'claude-opus-4-6': OPUS_4_5_TO_5,
  'claude-opus-4-5': OPUS_4_5_TO_5,
  'claude-opus-4-1': OPUS_4,
  'claude-opus-4-0': OPUS_4,
  'claude-opus-4': OPUS_4,
  'claude-sonnet-5-5': { input: 2, output: 10, cacheWrite: 2.5, cacheRead: 0.2 },
  'claude-sonnet-5': { input: 2, output: 10, cacheWrite: 2.5, cacheRead: 0.2 },
  // Sonnet 4.6 bills its 1M context at the standard rate (no long-context tier).
  'claude-sonnet-4-6': SONNET_4,
  'claude-sonnet-4-5': { ...SONNET_4, longContext: SONNET_LONG },
  'claude-sonnet-4-0': { ...SONNET_4, longContext: SONNET_LONG },
  'claude-sonnet-4': { ...SONNET_4, longContext: SONNET_LONG },
  'claude-3-7-sonnet': SONNET_4,
  'claude-haiku-5-5': {
    input: 0.1,
    output: 0.5,
    cacheWrite: 0.125,
    cacheRead: 0.01,
    longContext: HAIKU_5_5_LONG,
  },
  'claude-haiku-4-5': { input: 1, output: 5, cacheWrite: 1.25, cacheRead: 0.1 },
  'claude-3-5-haiku': { input: 0.8, output: 4, cacheWrite: 1, cacheRead: 0.08 },
  'claude-3-haiku': { input: 0.25, output: 1.25, cacheWrite: 0.3, cacheRead: 0.03 },
});

/** A dated snapshot id or a '-latest' alias, reduced to the table's alias. */
function baseId(model: string): string {
  return model.replace(/-(\d{8}|latest)$/, '');
}

/**
 * The price for `model`: a config override for the exact id, then for its alias, then the
 * table (exact, then alias). No prefix guessing: 'claude-sonnet-4-5' never falls back to
 * 'claude-sonnet-4'. Undefined when nothing is known.
 */
export function priceFor(
  model: string,
  overrides: Readonly<Record<string, PriceOverride>> = {},
): ModelPrice | undefined {
  const base = baseId(model);
  const override = overrides[model] ?? overrides[base];
  if (override) {
    return {
      input: override.input,
      output: override.output,
      cacheWrite: override.cacheWrite ?? override.input * 1.25,
      cacheRead: override.cacheRead ?? override.input * 0.1,
    };
  }
  return MODEL_PRICES[model] ?? MODEL_PRICES[base];
}

export function unknownPriceError(model: string): CoworkError {
  return new CoworkError(
    'invalidArgument',
    `no price known for model "${model}" — add [pricing."${model}"] with input and output (USD per million tokens) ` +
      `to config.toml, or use a model in the pricing table (${Object.keys(MODEL_PRICES).join(', ')})`,
  );
}

/** Cost of one call in nano-USD (integer), so budgets compare exactly at their boundaries. */
export function callCostNanoUsd(price: ModelPrice, usage: Usage): number {
  const cacheWrite = usage.cacheWrite ?? 0;
  const cacheRead = usage.cacheRead ?? 0;
  const long = price.longContext;
  const p = long && usage.input + cacheWrite + cacheRead > long.aboveInputTokens ? long : price;
  // $/MTok × 1000 = nano-USD per token; rounding makes decimal prices exact integers.
  const nano = (perMTok: number) => Math.round(perMTok * 1000);
  return (
    usage.input * nano(p.input) +
    usage.output * nano(p.output) +
    cacheWrite * nano(p.cacheWrite) +
    cacheRead * nano(p.cacheRead)
  );
}

/** Estimated USD cost of one call. Throws invalidArgument when no price is known. */
export function estimateCost(
  model: string,
  usage: Usage,
  overrides: Readonly<Record<string, PriceOverride>> = {},
): number {
  const price = priceFor(model, overrides);
  if (!price) throw unknownPriceError(model);
  return callCostNanoUsd(price, usage) / 1e9;
}
