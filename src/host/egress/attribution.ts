import { randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Which task a guest connection belongs to. Tasks run concurrently in one guest, so "the
 * current task" does not exist: each task's commands get their own proxy credentials in
 * HTTP(S)_PROXY (`http://<user>:<secret>@proxy`), and the proxy reads them back from the
 * Proxy-Authorization header of each request and CONNECT. A request without valid credentials
 * of a live task — none, malformed, unknown, or of a task that has ended — belongs to no task:
 * the sandbox-level rules alone decide it, and nothing granted to a task applies.
 *
 * Limits: every task's processes run as the guest's one `agent` user, so a process can read
 * another running task's environment from /proc and borrow its credentials while that task
 * runs. Attribution keeps honest traffic apart and ends a task's grants with the task; it is
 * not a wall between tasks that attack each other.
 */

/** What the proxy keeps per live task: the hosts approved for it, owned by the task's scope. */
export interface EgressTaskGrants {
  readonly taskId: string;
  /** Grant keys (see rules.ts grantKey) approved "for this task". */
  readonly hosts: Set<string>;
}

export interface ProxyCredential {
  readonly taskId: string;
  readonly username: string;
  readonly password: string;
}

interface Entry {
  credential: ProxyCredential;
  secret: Buffer;
  grants: EgressTaskGrants;
}

const USER_PREFIX = 'task-';

export class TaskAttribution {
  private readonly byUser = new Map<string, Entry>();
  private readonly byTask = new Map<string, Entry>();

  /** Issues fresh credentials for a task starting now; its grants live as long as they do. */
  issue(grants: EgressTaskGrants): ProxyCredential {
    if (this.byTask.has(grants.taskId)) this.revoke(grants.taskId);
    // The user name is a random handle (looked up in a map); only the secret is compared, in
    // constant time, so timing says nothing about it.
    const username = `${USER_PREFIX}${randomBytes(9).toString('base64url')}`;
    const password = randomBytes(24).toString('base64url');
    const credential: ProxyCredential = { taskId: grants.taskId, username, password };
    const entry: Entry = { credential, secret: Buffer.from(password), grants };
    this.byUser.set(username, entry);
    this.byTask.set(grants.taskId, entry);
    return credential;
  }

  /** The task has ended: its credentials stop working and its grants are forgotten. */
  revoke(taskId: string): void {
    const entry = this.byTask.get(taskId);
    if (!entry) return;
    this.byTask.delete(taskId);
    this.byUser.delete(entry.credential.username);
    entry.grants.hosts.clear();
  }

  /** The live task a Proxy-Authorization header proves, or null (no task). */
  attribute(header: string | string[] | undefined): string | null {
    if (typeof header !== 'string') return null;
    const m = /^\s*basic\s+([A-Za-z0-9+/=_-]{1,512})\s*$/i.exec(header);
    if (!m) return null;
    const decoded = Buffer.from(m[1] as string, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return null;
    const entry = this.byUser.get(decoded.slice(0, colon));
    if (!entry) return null;
    const given = Buffer.from(decoded.slice(colon + 1));
    const ok = given.length === entry.secret.length && timingSafeEqual(given, entry.secret);
    return ok ? entry.credential.taskId : null;
  }

  /** Hosts granted to a live task (empty for no task or an ended one). */
  grantsFor(taskId: string | null): ReadonlySet<string> {
    return (taskId === null ? undefined : this.byTask.get(taskId)?.grants.hosts) ?? EMPTY;
  }

  /** Grants a host to a live task; false (nothing kept) for no task or an ended one. */
  grant(taskId: string | null, key: string): boolean {
    const entry = taskId === null ? undefined : this.byTask.get(taskId);
    if (!entry) return false;
    entry.grants.hosts.add(key);
    return true;
  }

  /** Tasks with live credentials. */
  get live(): number {
    return this.byTask.size;
  }
}

const EMPTY: ReadonlySet<string> = new Set();

/**
 * The environment a task's command gets so its traffic is attributed to it: the proxy URL with
 * the task's credentials, upper and lower case (curl reads only lower-case http_proxy).
 */
export function proxyEnvFor(proxyUrl: string, credential: ProxyCredential): Record<string, string> {
  const u = new URL(proxyUrl);
  u.username = credential.username;
  u.password = credential.password;
  const url = u.toString().replace(/\/$/, '');
  return { HTTP_PROXY: url, HTTPS_PROXY: url, http_proxy: url, https_proxy: url };
}
