import { describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import { callCostNanoUsd, estimateCost, MODEL_PRICES, priceFor } from '../../src/host/guardrails/index.js';

describe('pricing table', () => {
  it('has sane prices for every model: cache read ≤ input ≤ cache write < output', () => {
    expect(Object.keys(MODEL_PRICES)).toEqual(
      expect.arrayContaining([
        'claude-opus-4-1',
        'claude-sonnet-4-5',
        'claude-haiku-4-5',
        'claude-sonnet-4',
        'claude-3-5-haiku',
      ]),
    );
    for (const [id, p] of Object.entries(MODEL_PRICES)) {
      expect(p.cacheRead, id).toBeGreaterThan(0);
      expect(p.cacheRead, id).toBeLessThanOrEqual(p.input);
      expect(p.input, id).toBeLessThanOrEqual(p.cacheWrite);
      expect(p.cacheWrite, id).toBeLessThan(p.output);
    }
  });

  it('resolves dated snapshots and -latest aliases to the table alias, never by prefix', () => {
    expect(priceFor('claude-sonnet-4-5-20250929')).toEqual(MODEL_PRICES['claude-sonnet-4-5']);
    expect(priceFor('claude-3-5-haiku-latest')).toEqual(MODEL_PRICES['claude-3-5-haiku']);
    expect(priceFor('claude-opus-4-1-20250805')?.input).toBe(15);
    // 'claude-opus-4-5' must not be priced as 'claude-opus-4' (3× the price) or vice versa.
    expect(priceFor('claude-opus-4-5-20251101')?.input).toBe(5);
    expect(priceFor('claude-opus-4-20250514')?.input).toBe(15);
    expect(priceFor('claude-haiku-4-5-20251001')?.output).toBe(5);
    for (const unknown of ['gpt-4o', 'claude-sonnet-4-5-preview', 'claude-sonnet', 'claude-opus-4-9', '']) {
      expect(priceFor(unknown), unknown).toBeUndefined();
    }
  });

  it('lets config override a known model or add a new one, deriving cache prices from input', () => {
    const overrides = {
      'claude-sonnet-4-5': { input: 2, output: 10 },
      'my-proxy-model': { input: 1, output: 2, cacheWrite: 9, cacheRead: 0.5 },
    };
    expect(priceFor('claude-sonnet-4-5', overrides)).toEqual({
      input: 2,
      output: 10,
      cacheWrite: 2.5,
      cacheRead: 0.2,
    });
    expect(priceFor('claude-sonnet-4-5-20250929', overrides)?.input).toBe(2);
    expect(priceFor('my-proxy-model', overrides)).toEqual({
      input: 1,
      output: 2,
      cacheWrite: 9,
      cacheRead: 0.5,
    });
    expect(priceFor('claude-haiku-4-5', overrides)).toEqual(MODEL_PRICES['claude-haiku-4-5']);
  });
});

describe('estimateCost', () => {
  it('prices each kind of token at its own rate', () => {
    // (prompts stay under 200K tokens here: above that Sonnet's long-context prices apply)
    expect(estimateCost('claude-sonnet-4-5', { input: 100_000, output: 0 })).toBe(0.3);
    expect(estimateCost('claude-sonnet-4-5', { input: 0, output: 1_000_000 })).toBe(15);
    expect(estimateCost('claude-sonnet-4-5', { input: 0, output: 0, cacheWrite: 100_000 })).toBe(0.375);
    expect(estimateCost('claude-sonnet-4-5', { input: 0, output: 0, cacheRead: 100_000 })).toBe(0.03);
    expect(estimateCost('claude-haiku-4-5', { input: 1_000_000, output: 1_000_000 })).toBe(6);
    expect(
      estimateCost('claude-opus-4-1', { input: 1000, output: 1000, cacheWrite: 1000, cacheRead: 1000 }),
    ).toBeCloseTo((15 + 75 + 18.75 + 1.5) / 1000, 12);
    expect(estimateCost('claude-3-5-haiku', { input: 1, output: 1 })).toBe(0.0000048);
  });

  it('is exact at decimal prices (integer nano-dollars, no float drift)', () => {
    const price = MODEL_PRICES['claude-sonnet-4-5']!;
    expect(callCostNanoUsd(price, { input: 0, output: 0, cacheRead: 1 })).toBe(300);
    let sum = 0;
    for (let i = 0; i < 10; i++) sum += callCostNanoUsd(price, { input: 0, output: 0, cacheRead: 100_000 });
    expect(sum / 1e9).toBe(0.3);
  });

  it('applies Sonnet long-context prices only above 200K prompt tokens', () => {
    expect(estimateCost('claude-sonnet-4-5', { input: 200_000, output: 1_000_000 })).toBe(0.6 + 15);
    expect(estimateCost('claude-sonnet-4-5', { input: 100_000, output: 0, cacheRead: 100_001 })).toBeCloseTo(
      (100_000 * 6 + 100_001 * 0.6) / 1e6,
      12,
    );
    expect(estimateCost('claude-sonnet-4-5', { input: 200_001, output: 1_000_000 })).toBeCloseTo(
      (200_001 * 6) / 1e6 + 22.5,
      12,
    );
    // Haiku has no long-context tier.
    expect(estimateCost('claude-haiku-4-5', { input: 300_000, output: 0 })).toBeCloseTo(0.3, 12);
  });

  it('refuses a model with no known price, saying how to add one', () => {
    try {
      estimateCost('claude-next-1', { input: 1, output: 1 });
      expect.unreachable();
    } catch (err) {
      expect(CoworkError.is(err, 'invalidArgument')).toBe(true);
      expect((err as Error).message).toContain('[pricing."claude-next-1"]');
    }
    expect(
      estimateCost(
        'claude-next-1',
        { input: 1_000_000, output: 0 },
        { 'claude-next-1': { input: 4, output: 8 } },
      ),
    ).toBe(4);
  });
});
