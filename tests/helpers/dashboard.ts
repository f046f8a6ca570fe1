import { waitFor } from './wait.js';

/**
 * A browser's side of the dashboard, with Node's fetch: log in with a one-time URL, call methods
 * the way the page does (cookie, same Origin, CSRF header), and read the event stream.
 */

export interface DashboardLogin {
  /** `http://127.0.0.1:<port>` */
  origin: string;
  cookie: string;
  csrf: string;
  deviceId: string;
  role: string;
  methods: string[];
}

/** Follows a login URL like a browser would: the 303's cookie, then GET /api/session. */
export async function loginWith(url: string): Promise<DashboardLogin> {
  const origin = new URL(url).origin;
  const res = await fetch(url, { redirect: 'manual' });
  if (res.status !== 303) throw new Error(`login answered ${res.status}: ${await res.text()}`);
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0]!;
  const s = await fetch(`${origin}/api/session`, { headers: { cookie } });
  if (s.status !== 200) throw new Error(`GET /api/session answered ${s.status}`);
  const info = (await s.json()) as Omit<DashboardLogin, 'origin' | 'cookie'>;
  return { origin, cookie, ...info };
}

/** `POST /api/call/<method>` as the page sends it; `headers` overrides any of the page's headers. */
export function call(
  d: DashboardLogin,
  method: string,
  params: unknown = {},
  headers: Record<string, string | undefined> = {},
): Promise<Response> {
  const h: Record<string, string | undefined> = {
    cookie: d.cookie,
    origin: d.origin,
    'x-cowork-csrf': d.csrf,
    'content-type': 'application/json',
    ...headers,
  };
  const clean = Object.fromEntries(Object.entries(h).filter(([, v]) => v !== undefined)) as Record<
    string,
    string
  >;
  return fetch(`${d.origin}/api/call/${method}`, {
    method: 'POST',
    headers: clean,
    body: JSON.stringify(params),
  });
}

export async function result<T = unknown>(res: Response | Promise<Response>): Promise<T> {
  const r = await res;
  const body = (await r.json()) as { result?: T; error?: { code: string; message: string } };
  if (r.status !== 200 || body.error) throw new Error(`call failed ${r.status}: ${JSON.stringify(body)}`);
  return body.result as T;
}

export interface SseEvent {
  event: string;
  data: unknown;
}

/** An open `GET /api/events`, read as it arrives. */
export class EventStreamReader {
  readonly events: SseEvent[] = [];
  /** The `id:` of each event that had one, in order. */
  readonly ids: string[] = [];
  comments = 0;
  ended = false;
  private readonly abort = new AbortController();

  private constructor(readonly response: Response) {}

  static async open(d: DashboardLogin, headers: Record<string, string> = {}): Promise<EventStreamReader> {
    const abort = new AbortController();
    const res = await fetch(`${d.origin}/api/events`, {
      headers: { cookie: d.cookie, ...headers },
      signal: abort.signal,
    });
    const r = new EventStreamReader(res);
    r.abort.signal.addEventListener('abort', () => abort.abort());
    if (res.status === 200) void r.pump();
    else r.ended = true;
    return r;
  }

  close(): void {
    this.abort.abort();
  }

  /** Waits until an event of this kind satisfies `match`; returns its data. */
  next<T = unknown>(event: string, match: (data: T) => boolean, what: string): Promise<T> {
    return waitFor(
      () => this.events.find((e) => e.event === event && match(e.data as T))?.data as T | undefined,
      what,
      { timeoutMs: 60_000, detail: () => `events so far: ${this.events.map((e) => e.event).join(', ')}` },
    );
  }

  private async pump(): Promise<void> {
    const reader = this.response.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        for (let i = buffer.indexOf('\n\n'); i >= 0; i = buffer.indexOf('\n\n')) {
          this.frame(buffer.slice(0, i));
          buffer = buffer.slice(i + 2);
        }
      }
    } catch {
      // aborted by close(), or the server cut the stream
    } finally {
      this.ended = true;
    }
  }

  private frame(text: string): void {
    let event = 'message';
    const data: string[] = [];
    for (const line of text.split('\n')) {
      if (line.startsWith(':')) this.comments++;
      else if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('id: ')) this.ids.push(line.slice(4));
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    if (data.length > 0) this.events.push({ event, data: JSON.parse(data.join('\n')) });
  }
}
