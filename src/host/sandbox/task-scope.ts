import { type ProxyCredential, proxyEnvFor, type TaskAttribution } from '../egress/index.js';

/**
 * Everything that holds for one task and must end with it: the commands approved "for this
 * task", the egress hosts approved for it, and the proxy credentials that attribute its
 * guest traffic to it. Opened when the task starts, disposed when it ends (success, failure,
 * cancel, or a crash of its loop); afterwards nothing of it is found anywhere.
 */
export class TaskScope {
  /** Exact command lines approved for the rest of the task. */
  readonly commandApprovals = new Set<string>();
  /** Egress grant keys approved for the rest of the task (read by the proxy through attribution). */
  readonly egressHosts = new Set<string>();
  readonly credential: ProxyCredential | undefined;
  #disposed = false;

  constructor(
    readonly taskId: string,
    private readonly attribution: TaskAttribution | undefined,
    private readonly proxyUrl: string | undefined,
  ) {
    this.credential = attribution?.issue({ taskId, hosts: this.egressHosts });
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /**
   * The environment the task's commands run with: its own proxy credentials, so the proxy
   * knows which task a connection belongs to. Empty when there is no proxy or the task ended.
   */
  proxyEnv(): Record<string, string> {
    if (this.#disposed || !this.credential || !this.proxyUrl) return {};
    return proxyEnvFor(this.proxyUrl, this.credential);
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.attribution?.revoke(this.taskId);
    this.commandApprovals.clear();
    this.egressHosts.clear();
  }
}

/** The open task scopes of one controller, by task id. */
export class TaskScopes {
  readonly #open = new Map<string, TaskScope>();

  constructor(private readonly egress: { attribution?: TaskAttribution; proxyUrl?: string } = {}) {}

  /** Opens the scope of a task that starts now (a stale one of the same id is disposed first). */
  open(taskId: string): TaskScope {
    this.#open.get(taskId)?.dispose();
    const scope = new TaskScope(taskId, this.egress.attribution, this.egress.proxyUrl);
    this.#open.set(taskId, scope);
    return scope;
  }

  /** The scope of a running task; undefined for no task or one that has ended. */
  get(taskId: string | undefined | null): TaskScope | undefined {
    return taskId ? this.#open.get(taskId) : undefined;
  }

  /** The task ended: its approvals, grants and credentials go. Idempotent. */
  close(taskId: string): void {
    this.#open.get(taskId)?.dispose();
    this.#open.delete(taskId);
  }

  /** Tasks with an open scope. */
  get size(): number {
    return this.#open.size;
  }

  disposeAll(): void {
    for (const id of [...this.#open.keys()]) this.close(id);
  }
}
