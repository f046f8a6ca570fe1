import type { Session } from './types.js';

/** An `{error:{code,message}}` answer, or a transport failure (code `http_<status>` / `network`). */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** `GET /api/session`; undefined when there is no session (401): the page then says how to log in. */
export async function loadSession(): Promise<Session | undefined> {
  const res = await fetch('/api/session', { credentials: 'same-origin', cache: 'no-store' });
  if (res.status === 401 || res.status === 403) return undefined;
  if (!res.ok) throw new ApiError(`http_${res.status}`, `GET /api/session answered ${res.status}`);
  return (await res.json()) as Session;
}

/**
 * Calls one contract method through `POST /api/call/<method>`. The CSRF token from the session
 * goes in a header (the server also checks Origin and the SameSite cookie); the method list
 * from the session decides which controls exist, the server decides what is allowed.
 */
export class Api {
  constructor(private readonly session: Session) {}

  can(method: string): boolean {
    return this.session.methods.includes(method);
  }

  async call<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`/api/call/${encodeURIComponent(method)}`, {
        method: 'POST',
        credentials: 'same-origin',
        cache: 'no-store',
        headers: { 'Content-Type': 'application/json', 'X-Cowork-CSRF': this.session.csrf },
        body: JSON.stringify(params),
      });
    } catch (err) {
      throw new ApiError('network', `${method}: the controller did not answer (${String(err)})`);
    }
    let body: { result?: unknown; error?: { code?: string; message?: string } } | undefined;
    try {
      body = await res.json();
    } catch {
      body = undefined;
    }
    if (body?.error) {
      throw new ApiError(String(body.error.code ?? `http_${res.status}`), String(body.error.message ?? ''));
    }
    if (!res.ok || !body || !('result' in body)) {
      throw new ApiError(`http_${res.status}`, `${method}: the controller answered ${res.status}`);
    }
    return body.result as T;
  }
}
