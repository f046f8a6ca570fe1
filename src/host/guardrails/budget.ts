import { z } from 'zod';
import { CoworkError } from '../errors.js';
import {
  type BudgetFigures,
  type LimitName,
  limitNameSchema,
  type Usage,
  usageSchema,
} from '../timeline/index.js';
import {
  callCostNanoUsd,
  type ModelPrice,
  type PriceOverride,
  priceFor,
  unknownPriceError,
} from './pricing.js';

/** Which limit stopped a task, with the figure reached and the limit (the task.limit event). */
export interface LimitBreach {
  name: LimitName;
  figure: number;
  limit: number;
}

const breachSchema = z.object({ name: limitNameSchema, figure: z.number(), limit: z.number() });

/** The breach carried by a CoworkError('limitExceeded') from this folder, if it is one. */
export function limitBreachOf(err: unknown): LimitBreach | undefined {
  if (!CoworkError.is(err, 'limitExceeded')) return undefined;
  const r = z.object({ limit: breachSchema }).safeParse(err.cause);
  return r.success ? r.data.limit : undefined;
}

export interface BudgetTrackerOptions {
  /** Limits for one task; undefined means that limit is not enforced. */
  maxTokens?: number;
  maxCostUsd?: number;
  maxIterations?: number;
  model: string;
  /** `[pricing."id"]` entries from config. */
  pricing?: Readonly<Record<string, PriceOverride>>;
}

const HINT: Record<LimitName, string> = {
  maxTokensPerTask: 'raise maxTokensPerTask in config.toml (1,000–10,000,000) or split the task',
  maxCostPerTask: 'raise maxCostPerTask in config.toml ($0.01–$100) or split the task',
  maxIterationsPerTask: 'raise maxIterationsPerTask in config.toml (5–500) or split the task',
  maxFileSizeMB: 'raise maxFileSizeMB in config.toml (1–500) or work on a smaller file',
};

/**
 * One task's budget: tokens (input + output + cache write + cache read, all of which the API
 * processes), estimated cost, and model calls (iterations). Call `checkBeforeCall` before each
 * model call and `recordUsage` after it; both throw CoworkError('limitExceeded') naming the
 * limit, the figure and the limit. An unknown model with a cost budget refuses to start.
 */
export class BudgetTracker {
  private readonly opts: BudgetTrackerOptions;
  private tokensIn = 0;
  private tokensOut = 0;
  private cacheWrite = 0;
  private cacheRead = 0;
  private iterations = 0;
  /** Cost in nano-USD; null once any call was made with a model that has no known price. */
  private costNano: number | null = 0;
  private readonly maxCostNano: number | undefined;
  private breached: LimitBreach | undefined;

  constructor(opts: BudgetTrackerOptions) {
    if (!opts.model)
      throw new CoworkError('invalidArgument', 'the budget needs the model id that will be called');
    positive('maxTokens', opts.maxTokens);
    positive('maxCostUsd', opts.maxCostUsd);
    positive('maxIterations', opts.maxIterations);
    this.opts = opts;
    this.maxCostNano = opts.maxCostUsd === undefined ? undefined : Math.round(opts.maxCostUsd * 1e9);
    this.priceOrThrow(opts.model);
  }

  /** Throws if the next model call cannot fit: iterations reached, or tokens or cost already at or over. */
  checkBeforeCall(): void {
    const { maxTokens, maxIterations } = this.opts;
    const total = this.totalTokens();
    if (maxTokens !== undefined && total >= maxTokens) this.stop('maxTokensPerTask', total, maxTokens);
    if (this.maxCostNano !== undefined && this.costNano !== null && this.costNano >= this.maxCostNano) {
      this.stop('maxCostPerTask', this.costNano / 1e9, this.opts.maxCostUsd!);
    }
    if (maxIterations !== undefined && this.iterations >= maxIterations) {
      this.stop('maxIterationsPerTask', this.iterations, maxIterations);
    }
  }

  /** Add one call's usage (one iteration), then throw if a limit is now exceeded. */
  recordUsage(usage: Usage, model: string = this.opts.model): BudgetFigures {
    const u = usageSchema.safeParse(usage);
    if (!u.success)
      throw new CoworkError('invalidArgument', `model usage is invalid: ${z.prettifyError(u.error)}`);
    this.iterations++;
    this.tokensIn += u.data.input;
    this.tokensOut += u.data.output;
    this.cacheWrite += u.data.cacheWrite ?? 0;
    this.cacheRead += u.data.cacheRead ?? 0;
    const price = this.priceOrThrow(model);
    this.costNano = price && this.costNano !== null ? this.costNano + callCostNanoUsd(price, u.data) : null;

    const { maxTokens } = this.opts;
    const total = this.totalTokens();
    if (maxTokens !== undefined && total > maxTokens) this.stop('maxTokensPerTask', total, maxTokens);
    if (this.maxCostNano !== undefined && this.costNano !== null && this.costNano > this.maxCostNano) {
      this.stop('maxCostPerTask', this.costNano / 1e9, this.opts.maxCostUsd!);
    }
    return this.figures();
  }

  figures(): BudgetFigures {
    const { maxTokens, maxCostUsd, maxIterations } = this.opts;
    return {
      model: this.opts.model,
      tokensIn: this.tokensIn,
      tokensOut: this.tokensOut,
      cacheWrite: this.cacheWrite,
      cacheRead: this.cacheRead,
      totalTokens: this.totalTokens(),
      costUsd: this.costNano === null ? null : this.costNano / 1e9,
      iterations: this.iterations,
      limits: {
        ...(maxTokens !== undefined ? { maxTokens } : {}),
        ...(maxCostUsd !== undefined ? { maxCostUsd } : {}),
        ...(maxIterations !== undefined ? { maxIterations } : {}),
      },
    };
  }

  /** The limit that stopped this task, once one has. */
  get breach(): LimitBreach | undefined {
    return this.breached;
  }

  private totalTokens(): number {
    return this.tokensIn + this.tokensOut + this.cacheWrite + this.cacheRead;
  }

  /** With a cost budget an unpriced model is refused (fail closed); without one it is allowed. */
  private priceOrThrow(model: string): ModelPrice | undefined {
    const price = priceFor(model, this.opts.pricing);
    if (!price && this.opts.maxCostUsd !== undefined) throw unknownPriceError(model);
    return price;
  }

  private stop(name: LimitName, figure: number, limit: number): never {
    this.breached = { name, figure, limit };
    throw limitError(this.breached);
  }
}

/** Throws limitExceeded (maxFileSizeMB) when `bytes` is over `maxFileSizeMB` MiB; exactly at it is allowed. */
export function checkFileSize(bytes: number, maxFileSizeMB: number, what = 'the file'): void {
  positive('maxFileSizeMB', maxFileSizeMB);
  if (!Number.isFinite(bytes) || bytes < 0) {
    throw new CoworkError(
      'invalidArgument',
      `file size must be a non-negative number of bytes, got ${bytes}`,
    );
  }
  if (bytes > maxFileSizeMB * 1024 * 1024) {
    const mb = Math.ceil((bytes / (1024 * 1024)) * 100) / 100;
    throw new CoworkError(
      'limitExceeded',
      `${what} is ${mb} MB, over maxFileSizeMB ${maxFileSizeMB} — ${HINT.maxFileSizeMB}`,
      { limit: { name: 'maxFileSizeMB', figure: mb, limit: maxFileSizeMB } },
    );
  }
}

function limitError(b: LimitBreach): CoworkError {
  const show = (n: number) =>
    b.name === 'maxCostPerTask' ? `$${n.toFixed(n < 1 ? 4 : 2)}` : n.toLocaleString('en-US');
  const what = {
    maxTokensPerTask: 'tokens',
    maxCostPerTask: 'spent',
    maxIterationsPerTask: 'model calls',
    maxFileSizeMB: 'MB',
  }[b.name];
  return new CoworkError(
    'limitExceeded',
    `task stopped: ${b.name} reached — ${show(b.figure)} ${what} of a limit of ${show(b.limit)}; ${HINT[b.name]}`,
    { limit: b },
  );
}

function positive(name: string, value: number | undefined): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new CoworkError('invalidArgument', `${name} must be a positive number, got ${value}`);
  }
}
