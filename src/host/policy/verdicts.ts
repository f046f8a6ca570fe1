import type { Decision, Effect, LayerName } from './types.js';
import { LAYERS } from './types.js';

/** One layer's vote. */
export interface Verdict {
  layer: LayerName;
  effect: Effect;
  reason: string;
  rule?: string;
}

export const SEVERITY: Record<Effect, number> = { allow: 0, ask: 1, deny: 2 };

/** Strictest vote wins; the deciding layer is the first (in layer order) that voted for it. */
export function combine(verdicts: Verdict[]): Decision {
  let effect: Effect = 'allow';
  for (const v of verdicts) if (SEVERITY[v.effect] > SEVERITY[effect]) effect = v.effect;
  const winners = verdicts
    .filter((v) => v.effect === effect)
    .sort((x, y) => LAYERS.indexOf(x.layer) - LAYERS.indexOf(y.layer));
  const first = winners[0];
  if (!first)
    return {
      effect: 'deny',
      layer: 'guardrails',
      rule: 'no-verdict',
      reasons: ['no layer decided (this is a bug): denied'],
    };
  const d: Decision = { effect, layer: first.layer, reasons: [...new Set(winners.map((w) => w.reason))] };
  if (first.rule !== undefined) d.rule = first.rule;
  return d;
}
