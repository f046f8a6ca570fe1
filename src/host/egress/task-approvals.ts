import type { ApprovalBroker, ApprovalRequest, Verdict } from '../approvals/types.js';

/**
 * Per-task egress approvals: hosts approved "for this task" and the approvals now pending.
 * Concurrent requests for the same task and host share one pending approval (a browser opens
 * many connections at once; the user is asked once). An approve-once verdict therefore admits
 * the requests that were waiting on that one question, and nothing after it.
 */
export class TaskApprovals {
  private readonly approved = new Map<string, Set<string>>();
  private readonly pending = new Map<string, Promise<Verdict>>();
  private waitingCount = 0;

  constructor(
    private readonly broker: ApprovalBroker | undefined,
    private readonly timeoutMs: number | undefined,
  ) {}

  hostsFor(taskId: string | null): ReadonlySet<string> {
    return this.approved.get(taskKey(taskId)) ?? new Set();
  }

  approveHost(taskId: string | null, host: string): void {
    const key = taskKey(taskId);
    let set = this.approved.get(key);
    if (!set) {
      set = new Set();
      this.approved.set(key, set);
    }
    set.add(host);
  }

  /** Forgets a finished task's approvals. */
  endTask(taskId: string | null): void {
    this.approved.delete(taskKey(taskId));
  }

  /** Requests now waiting for an answer (several may share one question). */
  get waiting(): number {
    return this.waitingCount;
  }

  get hasBroker(): boolean {
    return this.broker !== undefined;
  }

  /** Asks the broker (at most once at a time per task and host); approve-task is remembered. */
  async ask(taskId: string | null, host: string, req: ApprovalRequest): Promise<Verdict> {
    if (!this.broker) return { kind: 'deny', by: 'egress', message: 'no approval broker is connected' };
    const key = `${taskKey(taskId)}\u0000${host}`;
    let p = this.pending.get(key);
    if (!p) {
      p = this.broker
        .request(req, this.timeoutMs === undefined ? undefined : { timeoutMs: this.timeoutMs })
        .catch(
          (err: unknown): Verdict => ({
            kind: 'deny',
            by: 'egress',
            message: `approval failed: ${String(err)}`,
          }),
        )
        .then((v) => {
          if (v.kind === 'approve-task') this.approveHost(taskId, host);
          return v;
        })
        .finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    this.waitingCount += 1;
    try {
      return await p;
    } finally {
      this.waitingCount -= 1;
    }
  }
}

function taskKey(taskId: string | null): string {
  return taskId ?? '';
}
