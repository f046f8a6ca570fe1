export {
  BudgetTracker,
  type BudgetTrackerOptions,
  checkFileSize,
  type LimitBreach,
  limitBreachOf,
} from './budget.js';
export {
  callCostNanoUsd,
  estimateCost,
  MODEL_PRICES,
  type ModelPrice,
  PRICES_AS_OF,
  type PriceOverride,
  priceFor,
  unknownPriceError,
} from './pricing.js';
