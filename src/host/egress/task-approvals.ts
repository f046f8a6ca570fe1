import type { ApprovalBroker, ApprovalRequest, Verdict } from '../approvals/types.js';
import type { TaskAttribution } from './attribution.js';

/**
 * Egress approvals now pending, and where an approve-task verdict is kept: in the grants of the
 * task the request was attributed to (TaskAttribution), which end with the task. Traffic of no
 * task has nowhere to keep a grant, so approve-task counts as approve-once there.
 * Concurrent requests for the same task and host share one pending approval (a browser opens
 * many connections at once; the user is asked once). An approve-once verdict therefore admits
 * the requests that were waiting on that one question, and nothing after it.
 */
export class TaskApprovals {
  private readonly pending = new Map<string, Promise<Verdict>>();
  private waitingCount = 0;

  constructor(
    private readonly broker: ApprovalBroker | undefined,
    private readonly timeoutMs: number | undefined,
    private readonly tasks: TaskAttribution,
  ) {}

  /** Hosts (grant keys) approved for a live task; empty for no task. */
  hostsFor(taskId: string | null): ReadonlySet<string> {
    return this.tasks.grantsFor(taskId);
  }

  /** Requests now waiting for an answer (several may share one question). */
  get waiting(): number {
    return this.waitingCount;
  }

  get hasBroker(): boolean {
    return this.broker !== undefined;
  }

  /** Asks the broker (at most once at a time per task and host); approve-task is remembered. */
  async ask(taskId: string | null, key: string, req: ApprovalRequest): Promise<Verdict> {
    if (!this.broker) return { kind: 'deny', by: 'egress', message: 'no approval broker is connected' };
    const pendingKey = `${taskId ?? ''}\u0000${key}`;
    let p = this.pending.get(pendingKey);
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
          if (v.kind === 'approve-task') this.tasks.grant(taskId, key);
          return v;
        })
        .finally(() => this.pending.delete(pendingKey));
      this.pending.set(pendingKey, p);
    }
    this.waitingCount += 1;
    try {
      return await p;
    } finally {
      this.waitingCount -= 1;
    }
  }
}
