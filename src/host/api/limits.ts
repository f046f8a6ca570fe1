/**
 * The size limits of the contract's parameters, as plain numbers: the zod schemas in
 * contract.ts are built from them, and the CLI's option table uses the same values without
 * loading zod (its `--help` and `exec` paths must start at once).
 */
export const PARAM_LIMITS = {
  /** A shell command or a task prompt. */
  commandChars: 100_000,
  promptChars: 100_000,
  modelChars: 100,
  /** Ids of tasks (`t-…`) and approvals. */
  taskIdChars: 128,
  approvalIdChars: 64,
  cwdChars: 4096,
  /** A message sent with an approval answer (for deny: passed to the agent). */
  approvalMessageChars: 2000,
  /** Standard input forwarded to a command. */
  stdinChars: 1024 * 1024,
  /** Per-stream output cap of one command. */
  maxOutputBytes: 64 * 1024 * 1024,
  /** How long one command may run. */
  maxTimeoutMs: 86_400_000,
  /** Rows one tasks.list / timeline.query call returns at most. */
  /** An MCP client's name or version; a tool's name (the Messages API allows 64). */
  clientNameChars: 200,
  toolNameChars: 64,
  tasksListLimit: 1000,
  timelineQueryLimit: 1000,
} as const;

/** A task's budgets: the configured ones, tightened (never raised) by what the caller asked for. */
export interface BudgetLimits {
  maxTokens?: number;
  maxCostUsd?: number;
  maxIterations?: number;
}

export function tighterLimits(configured: BudgetLimits, requested: BudgetLimits | undefined): BudgetLimits {
  const pick = (a: number | undefined, b: number | undefined) =>
    a === undefined ? b : b === undefined ? a : Math.min(a, b);
  return {
    maxTokens: pick(configured.maxTokens, requested?.maxTokens),
    maxCostUsd: pick(configured.maxCostUsd, requested?.maxCostUsd),
    maxIterations: pick(configured.maxIterations, requested?.maxIterations),
  };
}
