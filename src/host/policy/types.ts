/**
 * Shared policy vocabulary. The PolicyEngine (this folder) is the ONE place a decision is
 * made; every command that reaches the guest passes through exactly one `evaluate` call.
 */

export const POLICY_CONTEXTS = ['local', 'agent', 'gateway'] as const;
/** local = the user at this machine's terminal; agent = tool calls made by the model; gateway = remote channels. */
export type PolicyContextName = (typeof POLICY_CONTEXTS)[number];

export const RISKS = ['read', 'write', 'destructive', 'system', 'network'] as const;
export type Risk = (typeof RISKS)[number];

export type Effect = 'allow' | 'ask' | 'deny';

/** Layers in their fixed evaluation order. */
export const LAYERS = ['guardrails', 'user', 'workspace', 'context', 'tool'] as const;
export type LayerName = (typeof LAYERS)[number];

export interface Decision {
  effect: Effect;
  reasons: string[];
  /** The layer whose verdict decided the final effect. */
  layer: LayerName;
  /** The rule that decided, e.g. 'Bash(git push:*)' or 'builtin:sudo'; absent for defaults. */
  rule?: string;
  /**
   * For a tool path with a scope (list, search): entries below it, relative to it, that Read
   * rules deny or ask for; a trailing '/' withholds a whole folder. The tool MUST leave them out.
   */
  withheld?: string[];
}

export type PolicyRequest =
  | {
      kind: 'shell';
      tool?: string; // default 'shell'
      command: string;
      cwd?: string;
    }
  | {
      kind: 'tool';
      tool: string; // e.g. 'read_file', 'write_file', 'browser_navigate'
      risk: Risk;
      input: unknown;
      /** Workspace paths the tool touches, checked by the path guard and Read/Write/Edit rules. */
      paths?: { path: string; access: 'read' | 'write' | 'edit'; scope?: 'entries' | 'tree' }[];
    };

export interface PolicyContext {
  context: PolicyContextName;
  /** Host path of the workspace (for the path guard). */
  workspace: string;
  taskId?: string;
  /** Exact commands the user approved "for the rest of this task": turn an ask into allow, never a deny. */
  approvedForTask?: ReadonlySet<string>;
}

export interface PolicyEngine {
  evaluate(request: PolicyRequest, ctx: PolicyContext): Decision;
}
