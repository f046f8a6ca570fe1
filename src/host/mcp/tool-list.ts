import type { ToolInfo } from '../api/controller.js';
import { toolJsonSchema } from '../tools/registry.js';
import type { AnyTool } from '../tools/types.js';

/**
 * Tools an outside agent must not be offered: `task_complete` ends one of our own agent tasks;
 * an MCP client ends its work by itself.
 */
export const NOT_FOR_OUTSIDE_AGENTS: ReadonlySet<string> = new Set(['task_complete']);

/** The tools an outside agent may call, from the sandbox's tool set, in its order. */
export function outsideAgentTools(tools: readonly AnyTool[]): AnyTool[] {
  return tools.filter((t) => !NOT_FOR_OUTSIDE_AGENTS.has(t.name));
}

/**
 * What `tools.list` answers (and the MCP server offers): each tool's name, description and the
 * JSON schema the model sees, derived from the same zod definition as the agent's own tools
 * (registry.ts, toolJsonSchema), so the two can never describe a tool differently.
 */
export function toolListing(tools: readonly AnyTool[]): ToolInfo[] {
  return outsideAgentTools(tools).map((t) => ({
    name: t.name,
    description: t.description,
    inputSchema: toolJsonSchema(t),
  }));
}

/** The origin of an outside agent's calls: `mcp:<client name>@<version>` (printable, bounded). */
export function mcpOrigin(client: { name: string; version: string }): string {
  const clean = (s: string) =>
    s
      .replace(/[^\x21-\x7e]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 80);
  const name = clean(client.name) || 'unknown';
  const version = clean(client.version);
  return `mcp:${name}${version ? `@${version}` : ''}`;
}
