import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import {
  BudgetTracker,
  checkFileSize,
  type LimitBreach,
  limitBreachOf,
} from '../../src/host/guardrails/index.js';
import { budgetFiguresSchema } from '../../src/host/timeline/index.js';

/** The error a call throws, or undefined when it does not throw. */
function thrown(fn: () => unknown): CoworkError | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof CoworkError) return err;
    throw err;
  }
  return undefined;
}

function expectLimit(fn: () => unknown, breach: LimitBreach): CoworkError {
  const err = thrown(fn);
  expect(err?.code).toBe('limitExceeded');
  expect(limitBreachOf(err)).toEqual(breach);
  return err!;
}

const sonnet = 'claude-sonnet-4-5';

describe('BudgetTracker: tokens', () => {
  it('allows a call below the limit, refuses the next call at the limit, and throws when a call goes over', () => {
    const b = new BudgetTracker({ maxTokens: 1000, model: sonnet });
    b.recordUsage({ input: 500, output: 200, cacheWrite: 100, cacheRead: 199 }); // 999
    expect(thrown(() => b.checkBeforeCall())).toBeUndefined();
    b.recordUsage({ input: 1, output: 0 }); // exactly 1000: not over
    const err = expectLimit(() => b.checkBeforeCall(), {
      name: 'maxTokensPerTask',
      figure: 1000,
      limit: 1000,
    });
    expect(err.message).toContain('maxTokensPerTask');
    expect(err.message).toContain('1,000 tokens of a limit of 1,000');
    expect(b.breach).toEqual({ name: 'maxTokensPerTask', figure: 1000, limit: 1000 });

    const over = new BudgetTracker({ maxTokens: 1000, model: sonnet });
    expectLimit(() => over.recordUsage({ input: 1000, output: 1 }), {
      name: 'maxTokensPerTask',
      figure: 1001,
      limit: 1000,
    });
    expect(over.figures().totalTokens).toBe(1001); // the call happened; its usage is counted
  });

  it('counts cache reads and writes as tokens', () => {
    const b = new BudgetTracker({ maxTokens: 1000, model: sonnet });
    expectLimit(() => b.recordUsage({ input: 0, output: 0, cacheRead: 1001 }), {
      name: 'maxTokensPerTask',
      figure: 1001,
      limit: 1000,
    });
  });

  it('never lets a call start at or over the limit, and throws exactly when a call goes over (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1000, max: 100_000 }),
        fc.array(fc.record({ input: fc.nat(5000), output: fc.nat(5000), cacheRead: fc.nat(5000) }), {
          maxLength: 60,
        }),
        (max, calls) => {
          const b = new BudgetTracker({ maxTokens: max, model: sonnet });
          let total = 0;
          for (const u of calls) {
            const blocked = thrown(() => b.checkBeforeCall());
            if (total >= max) {
              expect(blocked?.code).toBe('limitExceeded');
              return;
            }
            expect(blocked).toBeUndefined();
            total += u.input + u.output + u.cacheRead;
            expect(thrown(() => b.recordUsage(u))?.code).toBe(total > max ? 'limitExceeded' : undefined);
            expect(b.figures().totalTokens).toBe(total);
          }
        },
      ),
    );
  });
});

describe('BudgetTracker: cost', () => {
  it('stops at the cost limit exactly (sonnet 4.5 input is $3/MTok: 10,000 tokens = $0.03)', () => {
    const atLimit = new BudgetTracker({ maxCostUsd: 0.03, model: sonnet });
    atLimit.recordUsage({ input: 9_999, output: 0 });
    expect(thrown(() => atLimit.checkBeforeCall())).toBeUndefined();
    atLimit.recordUsage({ input: 1, output: 0 });
    expect(atLimit.figures().costUsd).toBe(0.03);
    const err = expectLimit(() => atLimit.checkBeforeCall(), {
      name: 'maxCostPerTask',
      figure: 0.03,
      limit: 0.03,
    });
    expect(err.message).toContain('$0.0300 spent of a limit of $0.0300');

    const over = new BudgetTracker({ maxCostUsd: 0.03, model: sonnet });
    expectLimit(() => over.recordUsage({ input: 10_000, output: 1 }), {
      name: 'maxCostPerTask',
      figure: 0.030015,
      limit: 0.03,
    });
  });

  it('uses config price overrides and per-call models', () => {
    const b = new BudgetTracker({
      maxCostUsd: 1,
      model: 'house-model',
      pricing: { 'house-model': { input: 100, output: 100 } },
    });
    b.recordUsage({ input: 5_000, output: 0 }); // $0.50
    b.recordUsage({ input: 0, output: 100_000 }, 'claude-haiku-4-5'); // $0.50 more: exactly $1
    expect(b.figures().costUsd).toBe(1);
    expect(thrown(() => b.checkBeforeCall())?.code).toBe('limitExceeded');
    expectLimit(() => b.recordUsage({ input: 1_000_000, output: 0 }, 'claude-haiku-4-5'), {
      name: 'maxCostPerTask',
      figure: 2,
      limit: 1,
    });
  });

  it('refuses to start with a cost budget and an unpriced model, and refuses an unpriced model mid-task', () => {
    const err = thrown(() => new BudgetTracker({ maxCostUsd: 1, model: 'claude-future-9' }));
    expect(err?.code).toBe('invalidArgument');
    expect(err?.message).toContain('no price known for model "claude-future-9"');
    expect(err?.message).toContain('[pricing."claude-future-9"]');

    const b = new BudgetTracker({ maxCostUsd: 1, model: sonnet });
    expect(thrown(() => b.recordUsage({ input: 1, output: 1 }, 'claude-future-9'))?.code).toBe(
      'invalidArgument',
    );
  });

  it('runs an unpriced model when there is no cost budget, reporting the cost as unknown', () => {
    const b = new BudgetTracker({ maxTokens: 10_000, model: 'claude-future-9' });
    b.recordUsage({ input: 10, output: 10 });
    expect(b.figures().costUsd).toBeNull();
    expect(thrown(() => b.checkBeforeCall())).toBeUndefined();
  });
});

describe('BudgetTracker: iterations', () => {
  it('allows exactly maxIterations model calls', () => {
    const b = new BudgetTracker({ maxIterations: 5, model: sonnet });
    for (let i = 0; i < 5; i++) {
      b.checkBeforeCall();
      b.recordUsage({ input: 1, output: 1 });
    }
    const err = expectLimit(() => b.checkBeforeCall(), { name: 'maxIterationsPerTask', figure: 5, limit: 5 });
    expect(err.message).toContain('5 model calls of a limit of 5');
  });
});

describe('BudgetTracker: inputs and figures', () => {
  it('refuses nonsense limits and usage', () => {
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(thrown(() => new BudgetTracker({ maxTokens: bad, model: sonnet }))?.code).toBe(
        'invalidArgument',
      );
      expect(thrown(() => new BudgetTracker({ maxCostUsd: bad, model: sonnet }))?.code).toBe(
        'invalidArgument',
      );
      expect(thrown(() => new BudgetTracker({ maxIterations: bad, model: sonnet }))?.code).toBe(
        'invalidArgument',
      );
    }
    expect(thrown(() => new BudgetTracker({ model: '' }))?.code).toBe('invalidArgument');
    const b = new BudgetTracker({ maxTokens: 1000, model: sonnet });
    expect(thrown(() => b.recordUsage({ input: -5, output: 0 }))?.code).toBe('invalidArgument');
    expect(thrown(() => b.recordUsage({ input: 1.5, output: 0 }))?.code).toBe('invalidArgument');
    expect(b.figures().iterations).toBe(0);
  });

  it('reports figures in the shape of the timeline budget event', () => {
    const b = new BudgetTracker({ maxTokens: 100_000, maxCostUsd: 1, maxIterations: 50, model: sonnet });
    b.recordUsage({ input: 1000, output: 500, cacheWrite: 200, cacheRead: 3000 });
    const f = b.figures();
    expect(budgetFiguresSchema.parse(f)).toEqual(f);
    expect(f).toEqual({
      model: sonnet,
      tokensIn: 1000,
      tokensOut: 500,
      cacheWrite: 200,
      cacheRead: 3000,
      totalTokens: 4700,
      costUsd: (1000 * 3 + 500 * 15 + 200 * 3.75 + 3000 * 0.3) / 1e6,
      iterations: 1,
      limits: { maxTokens: 100_000, maxCostUsd: 1, maxIterations: 50 },
    });
  });

  it('limitBreachOf ignores errors that are not budget limits', () => {
    expect(limitBreachOf(new CoworkError('denied', 'no'))).toBeUndefined();
    expect(limitBreachOf(new CoworkError('limitExceeded', 'other'))).toBeUndefined();
    expect(limitBreachOf(new Error('x'))).toBeUndefined();
  });
});

describe('checkFileSize', () => {
  const MiB = 1024 * 1024;
  it('allows exactly the limit and refuses one byte more', () => {
    expect(thrown(() => checkFileSize(50 * MiB, 50))).toBeUndefined();
    expect(thrown(() => checkFileSize(0, 1))).toBeUndefined();
    const err = expectLimit(() => checkFileSize(50 * MiB + 1, 50, 'out/big.bin'), {
      name: 'maxFileSizeMB',
      figure: 50.01,
      limit: 50,
    });
    expect(err.message).toContain('out/big.bin is 50.01 MB, over maxFileSizeMB 50');
  });

  it('refuses nonsense sizes and limits', () => {
    expect(thrown(() => checkFileSize(-1, 50))?.code).toBe('invalidArgument');
    expect(thrown(() => checkFileSize(Number.NaN, 50))?.code).toBe('invalidArgument');
    expect(thrown(() => checkFileSize(1, 0))?.code).toBe('invalidArgument');
  });
});
