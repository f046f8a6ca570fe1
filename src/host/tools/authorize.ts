import type { AnyTool, ToolContext, ToolResult } from './types.js';

/**
 * Asks the controller (policy + approval, recorded) whether a file tool may touch `paths`.
 * Returns the denial as a ToolResult for the model, or undefined when allowed.
 */
export async function authorizeFileTool(
  tool: AnyTool,
  input: unknown,
  paths: { path: string; access: 'read' | 'write' | 'edit' }[],
  ctx: ToolContext,
): Promise<ToolResult | undefined> {
  const outcome = await ctx.authorize({ kind: 'tool', tool: tool.name, risk: tool.risk, input, paths });
  if (outcome.allowed) return undefined;
  const reason = outcome.reason ?? outcome.decision.reasons.join('; ');
  return {
    content: `Denied: ${reason || 'policy said no'}. Nothing was read or written.`,
    isError: true,
    denied: true,
  };
}

/**
 * Like authorizeFileTool, for a list or search: also returns the entries (relative to the
 * scoped path) that Read rules withhold. A decision without that list for a scoped path is
 * treated as "withhold nothing" only because the policy always sets it when rules apply.
 */
export async function authorizeFileScope(
  tool: AnyTool,
  input: unknown,
  paths: { path: string; access: 'read' | 'write' | 'edit'; scope?: 'entries' | 'tree' }[],
  ctx: ToolContext,
): Promise<{ denied: ToolResult } | { withheld: string[] }> {
  const outcome = await ctx.authorize({ kind: 'tool', tool: tool.name, risk: tool.risk, input, paths });
  if (!outcome.allowed) {
    const reason = outcome.reason ?? outcome.decision.reasons.join('; ');
    return {
      denied: {
        content: `Denied: ${reason || 'policy said no'}. Nothing was read or written.`,
        isError: true,
        denied: true,
      },
    };
  }
  return { withheld: outcome.decision.withheld ?? [] };
}

/** A failed guest operation (missing file, permission) as something the model can act on. */
export function guestFailure(action: string, path: string, err: unknown): ToolResult {
  const msg = err instanceof Error ? err.message : String(err);
  return { content: `Could not ${action} ${path}: ${msg}`, isError: true };
}
