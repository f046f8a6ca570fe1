import { z } from 'zod';
import { POLICY_CONTEXTS, RISKS } from '../policy/types.js';

/** Validated at the broker: requests come from the controller, verdicts from any frontend. */
export const approvalRequestSchema = z.object({
  taskId: z.string().min(1).optional(),
  tool: z.string().min(1),
  command: z.string().optional(),
  input: z.unknown().optional(),
  cwd: z.string().optional(),
  risk: z.enum(RISKS),
  context: z.enum(POLICY_CONTEXTS),
  reasons: z.array(z.string()),
});

export const verdictSchema = z.strictObject({
  kind: z.enum(['approve-once', 'approve-task', 'deny']),
  message: z.string().max(4000).optional(),
  by: z.string().min(1).max(200),
});

/** The most a timer can wait in Node (about 24.8 days); beyond it setTimeout fires at once. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export const DEFAULT_APPROVAL_TIMEOUT_MS = 5 * 60 * 1000;
