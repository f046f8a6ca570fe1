import type { BudgetFigures, LimitName } from '../timeline/events.js';

/**
 * Which per-task limit the figures have reached, for the timeline's task.limit event. Read
 * from the figures rather than the error text so the record cannot drift from the budget.
 */
export function limitFromFigures(
  f: BudgetFigures,
): { name: LimitName; figure: number; limit: number } | undefined {
  const { maxIterations, maxTokens, maxCostUsd } = f.limits;
  if (maxTokens !== undefined && f.totalTokens >= maxTokens) {
    return { name: 'maxTokensPerTask', figure: f.totalTokens, limit: maxTokens };
  }
  if (maxCostUsd !== undefined && f.costUsd !== null && f.costUsd >= maxCostUsd) {
    return { name: 'maxCostPerTask', figure: f.costUsd, limit: maxCostUsd };
  }
  if (maxIterations !== undefined && f.iterations >= maxIterations) {
    return { name: 'maxIterationsPerTask', figure: f.iterations, limit: maxIterations };
  }
  return undefined;
}
