import type { PolicyContextName, Risk } from '../policy/types.js';

export interface ApprovalRequest {
  taskId?: string;
  tool: string; // 'shell', 'write_file', 'egress', ...
  command?: string; // shell command, or 'GET https://host/...' for egress
  input?: unknown;
  cwd?: string;
  risk: Risk;
  context: PolicyContextName;
  reasons: string[];
}

export type VerdictKind = 'approve-once' | 'approve-task' | 'deny';

export interface Verdict {
  kind: VerdictKind;
  /** For deny: a message passed to the agent. */
  message?: string;
  /** Who answered: 'terminal', 'cli', 'device:<id>', 'telegram:<user>', 'timeout', 'restart'. */
  by: string;
}

/** What `request` resolves with: the verdict plus the approval's id (absent if none was created). */
export interface ApprovalOutcome extends Verdict {
  id?: string;
}

export interface PendingApproval extends ApprovalRequest {
  id: string; // short, typeable (e.g. 'a7k2')
  createdAt: number; // epoch ms
  expiresAt: number; // epoch ms
}

export interface ApprovalBroker {
  /** Resolves with the first answer; a timeout (default 5 min) or abort resolves as deny. */
  request(
    req: ApprovalRequest,
    opts?: { timeoutMs?: number; signal?: AbortSignal },
  ): Promise<ApprovalOutcome>;
  list(): PendingApproval[];
  /** Throws CoworkError('invalidState', 'already answered') for a second answer, 'notFound' for unknown ids. */
  answer(id: string, verdict: Verdict): void;
  on(event: 'pending', listener: (p: PendingApproval) => void): this;
  on(event: 'answered', listener: (p: PendingApproval, v: Verdict) => void): this;
  off(event: 'pending' | 'answered', listener: (...args: never[]) => void): this;
}
