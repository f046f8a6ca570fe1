import { z } from 'zod';
import { CoworkError } from '../errors.js';
import { shortId, type Timeline } from '../timeline/index.js';
import {
  approvalRequestSchema,
  DEFAULT_APPROVAL_TIMEOUT_MS,
  MAX_TIMEOUT_MS,
  verdictSchema,
} from './schemas.js';
import type { ApprovalBroker, ApprovalOutcome, ApprovalRequest, PendingApproval, Verdict } from './types.js';

export interface MemoryApprovalBrokerOptions {
  /** Records approval.asked / answered / timedout so a restart can deny what was left pending. */
  timeline?: Pick<Timeline, 'record'>;
  /** Default 5 minutes. */
  defaultTimeoutMs?: number;
  /** Clock for createdAt/expiresAt, for tests. */
  now?: () => number;
}

type PendingListener = (p: PendingApproval) => void;
type AnsweredListener = (p: PendingApproval, v: Verdict) => void;

interface Entry {
  approval: PendingApproval;
  settle: (v: Verdict, how: 'answered' | 'timedout') => void;
}

/** How many answered ids are remembered, so a late second answer hears "already answered". */
const ANSWERED_MEMORY = 500;

/**
 * Pending approvals live in this object only: if the controller dies they die with it, and the
 * request that waited on them is gone too — so nothing is ever approved by a restart. The first
 * answer wins; every later one is refused with who answered first. No answer by the deadline
 * (default 5 minutes) or an aborted signal resolves as deny.
 */
export class MemoryApprovalBroker implements ApprovalBroker {
  private readonly pending = new Map<string, Entry>();
  private readonly answered = new Map<string, Verdict>();
  private readonly pendingListeners = new Set<PendingListener>();
  private readonly answeredListeners = new Set<AnsweredListener>();
  private readonly timeline: Pick<Timeline, 'record'> | undefined;
  private readonly defaultTimeoutMs: number;
  private readonly now: () => number;
  private closed = false;

  constructor(opts: MemoryApprovalBrokerOptions = {}) {
    this.timeline = opts.timeline;
    this.defaultTimeoutMs = checkTimeout(opts.defaultTimeoutMs ?? DEFAULT_APPROVAL_TIMEOUT_MS);
    this.now = opts.now ?? Date.now;
  }

  async request(
    req: ApprovalRequest,
    opts: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<ApprovalOutcome> {
    const parsed = approvalRequestSchema.safeParse(req);
    if (!parsed.success) {
      throw new CoworkError(
        'invalidArgument',
        `approval request is invalid: ${z.prettifyError(parsed.error)}`,
      );
    }
    const timeoutMs = checkTimeout(opts.timeoutMs ?? this.defaultTimeoutMs);
    if (this.closed) return { kind: 'deny', by: 'shutdown', message: 'the controller is shutting down' };
    if (opts.signal?.aborted) return { kind: 'deny', by: 'abort', message: 'the request was cancelled' };

    const createdAt = this.now();
    // Frozen: every frontend sees the same object, and none can change what the others show.
    const approval: PendingApproval = Object.freeze({
      ...req,
      reasons: Object.freeze([...req.reasons]) as string[],
      id: this.newId(),
      createdAt,
      expiresAt: createdAt + timeoutMs,
    });
    // Durable before anyone can see or answer it: a restart then finds it and denies it.
    this.timeline?.record(req.taskId ?? null, {
      type: 'approval.asked',
      id: approval.id,
      tool: req.tool,
      command: req.command,
      inputExcerpt: req.input === undefined ? undefined : jsonText(req.input),
      cwd: req.cwd,
      risk: req.risk,
      context: req.context,
      reasons: req.reasons,
      expiresAt: approval.expiresAt,
    });

    return new Promise<ApprovalOutcome>((resolve) => {
      const onAbort = () =>
        entry.settle({ kind: 'deny', by: 'abort', message: 'the request was cancelled' }, 'answered');
      const timer = setTimeout(
        () => entry.settle({ kind: 'deny', by: 'timeout', message: 'no answer in time' }, 'timedout'),
        timeoutMs,
      );
      const entry: Entry = {
        approval,
        settle: (verdict, how) => {
          if (this.pending.get(approval.id) !== entry) return; // already settled
          this.pending.delete(approval.id);
          clearTimeout(timer);
          opts.signal?.removeEventListener('abort', onAbort);
          this.remember(approval.id, verdict);
          this.recordOutcome(approval, verdict, how);
          for (const l of this.answeredListeners) safely(() => l(approval, verdict));
          resolve({ ...verdict, id: approval.id });
        },
      };
      this.pending.set(approval.id, entry);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      for (const l of this.pendingListeners) safely(() => l(approval));
    });
  }

  list(): PendingApproval[] {
    return [...this.pending.values()].map((e) => e.approval).sort((a, b) => a.createdAt - b.createdAt);
  }

  get(id: string): PendingApproval | undefined {
    return this.pending.get(id)?.approval;
  }

  answer(id: string, verdict: Verdict): void {
    const v = verdictSchema.safeParse(verdict);
    if (!v.success)
      throw new CoworkError('invalidArgument', `answer to ${id} is invalid: ${z.prettifyError(v.error)}`);
    const entry = this.pending.get(id);
    if (!entry) {
      const first = this.answered.get(id);
      if (first) {
        throw new CoworkError(
          'invalidState',
          `approval ${id} was already answered (${first.kind} by ${first.by})`,
        );
      }
      throw new CoworkError(
        'notFound',
        `no pending approval ${id} — list pending approvals with \`cowork-vm approvals\``,
      );
    }
    entry.settle(v.data, 'answered');
  }

  on(event: 'pending', listener: PendingListener): this;
  on(event: 'answered', listener: AnsweredListener): this;
  on(event: 'pending' | 'answered', listener: PendingListener | AnsweredListener): this {
    if (event === 'pending') this.pendingListeners.add(listener as PendingListener);
    else this.answeredListeners.add(listener as AnsweredListener);
    return this;
  }

  off(event: 'pending' | 'answered', listener: (...args: never[]) => void): this {
    if (event === 'pending') this.pendingListeners.delete(listener as unknown as PendingListener);
    else this.answeredListeners.delete(listener as unknown as AnsweredListener);
    return this;
  }

  /** Deny everything still pending (by 'shutdown') and refuse new requests. Idempotent. */
  close(): void {
    this.closed = true;
    for (const e of [...this.pending.values()]) {
      e.settle({ kind: 'deny', by: 'shutdown', message: 'the controller is shutting down' }, 'answered');
    }
  }

  private newId(): string {
    for (;;) {
      const id = shortId('a', 3);
      if (!this.pending.has(id) && !this.answered.has(id)) return id;
    }
  }

  private remember(id: string, verdict: Verdict): void {
    this.answered.set(id, verdict);
    if (this.answered.size > ANSWERED_MEMORY) {
      const oldest = this.answered.keys().next().value;
      if (oldest !== undefined) this.answered.delete(oldest);
    }
  }

  private recordOutcome(p: PendingApproval, v: Verdict, how: 'answered' | 'timedout'): void {
    const taskId = p.taskId ?? null;
    // The verdict is already decided; a timeline that cannot take the record (closing) must not undo it.
    safely(() => {
      if (how === 'timedout')
        this.timeline?.record(taskId, {
          type: 'approval.timedout',
          id: p.id,
          verdict: 'deny',
          by: 'timeout',
        });
      else
        this.timeline?.record(taskId, {
          type: 'approval.answered',
          id: p.id,
          verdict: v.kind,
          by: v.by,
          ...(v.message !== undefined ? { message: v.message } : {}),
        });
    });
  }
}

function checkTimeout(ms: number): number {
  if (!Number.isFinite(ms) || ms <= 0 || ms > MAX_TIMEOUT_MS) {
    throw new CoworkError(
      'invalidArgument',
      `approval timeout must be between 1 ms and ${MAX_TIMEOUT_MS} ms, got ${ms}`,
    );
  }
  return ms;
}

function jsonText(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value); // cyclic or BigInt: still show something
  }
}

function safely(fn: () => void): void {
  try {
    fn();
  } catch {
    // Frontends and recorders must not break the broker: the verdict stands.
  }
}
