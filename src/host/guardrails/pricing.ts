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
   * larger than `aboveInputTokens` (Sonnet 4 / 4.5 with the 1M-token context window).
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
 * THE pricing table: Anthropic's published list prices (anthropic.com/pricing, the models
 * overview in the API docs) as of 2025-11-24. Ids are the API aliases; dated ids such as
 * 'claude-sonnet-4-5-20250929' and '-latest' aliases resolve to them. Prices change: a user
 * can override any model, or add one, with `[pricing."id"]` in config.toml.
 * Not modelled: the 1-hour cache TTL (2 × input for writes) and batch discounts — estimates
 * price every cache write at the 5-minute rate.
 */
export const PRICES_AS_OF = '2025-11-24';

const SONNET_LONG = { aboveInputTokens: 200_000, input: 6, output: 22.5, cacheWrite: 7.5, cacheRead: 0.6 };

export const MODEL_PRICES: Readonly<Record<string, Readonly<ModelPrice>>> = Object.freeze({
  'claude-opus-4-5': { input: 5, output: 25, cacheWrite: 6.25, cacheRead: 0.5 },
  'claude-opus-4-1': { input: 15, output: 75, cacheWrite: 18.75, cacheRead: 1.5 },
  'claude-opus-4-0': { input: 15, output: 75, cacheWrite: 18.75, cacheRead: 1.5 },
  'claude-opus-4': { input: 15, output: 75, cacheWrite: 18.75, cacheRead: 1.5 },
  'claude-sonnet-4-5': { input: 3, output: 15, cacheWrite: 3.75, cacheRead: 0.3, longContext: SONNET_LONG },
  'claude-sonnet-4-0': { input: 3, output: 15, cacheWrite: 3.75, cacheRead: 0.3, longContext: SONNET_LONG },
  'claude-sonnet-4': { input: 3, output: 15, cacheWrite: 3.75, cacheRead: 0.3, longContext: SONNET_LONG },
  'claude-3-7-sonnet': { input: 3, output: 15, cacheWrite: 3.75, cacheRead: 0.3 },
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
