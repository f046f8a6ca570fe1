import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local stand-in for the Anthropic Messages API (POST /v1/messages), speaking its real wire
 * protocol so the real @anthropic-ai/sdk can be pointed at it with `baseURL`: JSON responses
 * and SSE streams (message_start, content_block_start/delta/stop, message_delta,
 * message_stop, ping), tool_use blocks, usage with cache fields, the error envelope
 * `{type:'error', error:{type, message}}`, retry-after on 429. Each test scripts a queue of
 * responses and inspects what the model was sent (`requests`).
 *
 * Like the real API it rejects a request whose API key is wrong (401) and a conversation in
 * which a tool_use is not answered by a tool_result in the next user turn (400).
 *
 * GET /v1/models lists `models` with the real pagination (`limit`, `after_id`, `before_id` →
 * `{data, has_more, first_id, last_id}`); with `strictModels`, a Messages call naming a model
 * not in that list gets the API's 404 `not_found_error` ("model: ID").
 */

/** Wire JSON as the tests read it. */
// biome-ignore lint/suspicious/noExplicitAny: untyped wire JSON, asserted on by tests
type Wire = any;

export type ScriptedBlock =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; name: string; input: Record<string, unknown>; id?: string };

export interface ScriptedUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number;
  cache_read_input_tokens?: number;
}

export type Scripted =
  | { kind: 'message'; content: ScriptedBlock[]; stopReason?: string; usage?: Partial<ScriptedUsage> }
  | { kind: 'error'; status: number; type: string; message: string; headers?: Record<string, string> }
  /** HTTP 200 stream that sends an `event: error` after message_start (e.g. overloaded mid-stream). */
  | { kind: 'stream-error'; type: string; message: string }
  /** Sends message_start, then nothing: the client must abort. `aborted` resolves when it does. */
  | { kind: 'hang' };

export interface StandInModel {
  id: string;
  display_name: string;
  created_at: string;
}

/** What the stand-in lists by default: newest first, like the real Models API. */
export const DEFAULT_STAND_IN_MODELS: StandInModel[] = [
  { id: 'claude-sonnet-5-5', display_name: 'Claude Sonnet 5.5', created_at: '2026-09-24T00:00:00Z' },
  { id: 'claude-opus-5-5', display_name: 'Claude Opus 5.5', created_at: '2026-09-23T00:00:00Z' },
  { id: 'claude-haiku-5-5', display_name: 'Claude Haiku 5.5', created_at: '2026-10-07T00:00:00Z' },
  { id: 'claude-fable-5-2', display_name: 'Claude Fable 5.2', created_at: '2026-11-10T00:00:00Z' },
  { id: 'claude-haiku-4-5-20251001', display_name: 'Claude Haiku 4.5', created_at: '2025-10-01T00:00:00Z' },
];

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: Wire;
  raw: string;
}

export const text = (t: string): ScriptedBlock => ({ type: 'text', text: t });
export const toolUse = (name: string, input: Record<string, unknown>, id?: string): ScriptedBlock => ({
  type: 'tool_use',
  name,
  input,
  ...(id ? { id } : {}),
});
export const reply = (
  content: ScriptedBlock[],
  usage?: Partial<ScriptedUsage>,
  stopReason?: string,
): Scripted => ({
  kind: 'message',
  content,
  ...(usage ? { usage } : {}),
  ...(stopReason ? { stopReason } : {}),
});
export const apiError = (
  status: number,
  type: string,
  message: string,
  headers?: Record<string, string>,
): Scripted => ({
  kind: 'error',
  status,
  type,
  message,
  ...(headers ? { headers } : {}),
});

const id = (prefix: string) => `${prefix}_${randomBytes(12).toString('hex')}`;

export class AnthropicApiStandIn {
  readonly requests: RecordedRequest[] = [];
  /** Resolves each time a 'hang' response's connection is closed by the client. */
  readonly hangAborts: Promise<void>[] = [];
  readonly #queue: Scripted[] = [];
  readonly #server: Server;
  readonly #apiKey: string;
  readonly models: StandInModel[];
  readonly #strictModels: boolean;

  private constructor(server: Server, apiKey: string, models: StandInModel[], strictModels: boolean) {
    this.#server = server;
    this.#apiKey = apiKey;
    this.models = models;
    this.#strictModels = strictModels;
  }

  static async start(
    opts: { apiKey?: string; models?: StandInModel[]; strictModels?: boolean } = {},
  ): Promise<AnthropicApiStandIn> {
    const server = createServer();
    const api = new AnthropicApiStandIn(
      server,
      opts.apiKey ?? 'sk-ant-test-key',
      opts.models ?? DEFAULT_STAND_IN_MODELS,
      opts.strictModels ?? false,
    );
    server.on('request', (req, res) => void api.#handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return api;
  }

  get baseURL(): string {
    const { port } = this.#server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  get apiKey(): string {
    return this.#apiKey;
  }

  enqueue(...responses: Scripted[]): this {
    this.#queue.push(...responses);
    return this;
  }

  /** Drops scripted responses that were not used (between tests sharing one server). */
  clear(): void {
    this.#queue.length = 0;
  }

  get pending(): number {
    return this.#queue.length;
  }

  /** Only the POST /v1/messages calls, in order. */
  get messageRequests(): RecordedRequest[] {
    return this.requests.filter((r) => r.method === 'POST' && r.path === '/v1/messages');
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    try {
      body = raw === '' ? undefined : JSON.parse(raw);
    } catch {
      body = undefined;
    }
    const path = (req.url ?? '').split('?')[0] ?? '';
    this.requests.push({ method: req.method ?? '', path, headers: req.headers, body, raw });
    if (req.method === 'GET' && path === '/v1/models') {
      if (presentedKey(req) !== this.#apiKey)
        return sendError(res, 401, 'authentication_error', 'invalid x-api-key');
      return this.#listModels(req, res);
    }
    if (req.method !== 'POST' || path !== '/v1/messages') {
      return sendError(res, 404, 'not_found_error', `no route ${req.method} ${path}`);
    }
    if (presentedKey(req) !== this.#apiKey) {
      return sendError(res, 401, 'authentication_error', 'invalid x-api-key');
    }
    const invalid = validateRequest(body);
    if (invalid) return sendError(res, 400, 'invalid_request_error', invalid);
    const model = (body as Wire).model;
    if (this.#strictModels && !this.models.some((m) => m.id === model)) {
      return sendError(res, 404, 'not_found_error', `model: ${model}`);
    }
    const next = this.#queue.shift();
    if (!next) return sendError(res, 500, 'api_error', 'anthropic stand-in: no scripted response left');
    const b = body as Wire;
    if (next.kind === 'error') {
      return sendError(res, next.status, next.type, next.message, next.headers);
    }
    const message = buildMessage(next, b.model);
    if (!b.stream) {
      if (next.kind !== 'message') return sendError(res, 500, 'api_error', 'scripted a stream-only response');
      res.writeHead(200, { 'content-type': 'application/json', 'request-id': id('req') });
      res.end(JSON.stringify(message));
      return;
    }
    this.#stream(res, next, message);
  }
  /** GET /v1/models: one page, cut by limit (1–1000, default 20) after after_id / before before_id. */
  #listModels(req: IncomingMessage, res: ServerResponse): void {
    const q = new URL(req.url ?? '/', 'http://stand-in').searchParams;
    const limit = Number(q.get('limit') ?? 20);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      sendError(res, 400, 'invalid_request_error', 'limit: must be between 1 and 1000');
      return;
    }
    let from = 0;
    let to = this.models.length;
    const after = q.get('after_id');
    const before = q.get('before_id');
    if (after) from = this.models.findIndex((m) => m.id === after) + 1;
    if (before)
      to = Math.max(
        0,
        this.models.findIndex((m) => m.id === before),
      );
    let page = this.models.slice(from, to);
    const hasMore = page.length > limit;
    page = before ? page.slice(-limit) : page.slice(0, limit);
    res.writeHead(200, { 'content-type': 'application/json', 'request-id': id('req') });
    res.end(
      JSON.stringify({
        data: page.map((m) => ({ type: 'model', ...m })),
        has_more: hasMore,
        first_id: page[0]?.id ?? null,
        last_id: page.at(-1)?.id ?? null,
      }),
    );
  }

  #stream(res: ServerResponse, scripted: Scripted, message: Wire): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      'request-id': id('req'),
    });
    const send = (event: string, data: unknown) =>
      res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    const usage = message.usage;
    send('message_start', {
      type: 'message_start',
      message: {
        ...message,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { ...usage, output_tokens: 1 },
      },
    });
    send('ping', { type: 'ping' });
    if (scripted.kind === 'hang') {
      this.hangAborts.push(new Promise<void>((resolve) => res.on('close', () => resolve())));
      return;
    }
    if (scripted.kind === 'stream-error') {
      send('error', { type: 'error', error: { type: scripted.type, message: scripted.message } });
      res.end();
      return;
    }
    message.content.forEach((block: ScriptedBlock & { id?: string }, index: number) => {
      if (block.type === 'text') {
        send('content_block_start', {
          type: 'content_block_start',
          index,
          content_block: { type: 'text', text: '' },
        });
        for (const piece of splitInto(block.text, 3)) {
          send('content_block_delta', {
            type: 'content_block_delta',
            index,
            delta: { type: 'text_delta', text: piece },
          });
        }
      } else {
        send('content_block_start', {
          type: 'content_block_start',
          index,
          content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} },
        });
        for (const piece of splitInto(JSON.stringify(block.input), 3)) {
          send('content_block_delta', {
            type: 'content_block_delta',
            index,
            delta: { type: 'input_json_delta', partial_json: piece },
          });
        }
      }
      send('content_block_stop', { type: 'content_block_stop', index });
    });
    send('message_delta', {
      type: 'message_delta',
      delta: { stop_reason: message.stop_reason, stop_sequence: null },
      usage: { output_tokens: usage.output_tokens },
    });
    send('message_stop', { type: 'message_stop' });
    res.end();
  }
}

/** The API takes the key as `x-api-key` or (newer SDKs) `Authorization: Bearer`. */
export function presentedKey(req: { headers: IncomingMessage['headers'] }): string | undefined {
  const x = req.headers['x-api-key'];
  if (typeof x === 'string') return x;
  const auth = req.headers.authorization;
  return auth?.startsWith('Bearer ') ? auth.slice('Bearer '.length) : undefined;
}

function splitInto(s: string, parts: number): string[] {
  if (s.length < parts) return [s];
  const size = Math.ceil(s.length / parts);
  const out: string[] = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}
function buildMessage(scripted: Scripted, model: string): Wire {
  const content = scripted.kind === 'message' ? scripted.content : [];
  const blocks = content.map((b) => (b.type === 'tool_use' ? { ...b, id: b.id ?? id('toolu') } : b));
  const u = scripted.kind === 'message' ? scripted.usage : undefined;
  const hasTool = blocks.some((b) => b.type === 'tool_use');
  return {
    id: id('msg'),
    type: 'message',
    role: 'assistant',
    model,
    content: blocks,
    stop_reason: (scripted.kind === 'message' && scripted.stopReason) || (hasTool ? 'tool_use' : 'end_turn'),
    stop_sequence: null,
    usage: {
      input_tokens: u?.input_tokens ?? 100,
      output_tokens: u?.output_tokens ?? 20,
      cache_creation_input_tokens: u?.cache_creation_input_tokens ?? 0,
      cache_read_input_tokens: u?.cache_read_input_tokens ?? 0,
    },
  };
}

function sendError(
  res: ServerResponse,
  status: number,
  type: string,
  message: string,
  headers?: Record<string, string>,
) {
  res.writeHead(status, { 'content-type': 'application/json', 'request-id': id('req'), ...headers });
  res.end(JSON.stringify({ type: 'error', error: { type, message }, request_id: id('req') }));
}

/** The checks of the real API that a broken loop would trip over; undefined when fine. */
function validateRequest(body: unknown): string | undefined {
  const b = body as Wire;
  if (!b || typeof b !== 'object') return 'body must be a JSON object';
  if (typeof b.model !== 'string' || b.model === '') return 'model: field required';
  if (!Number.isInteger(b.max_tokens) || b.max_tokens < 1) return 'max_tokens: field required';
  if (!Array.isArray(b.messages) || b.messages.length === 0)
    return 'messages: at least one message is required';
  if (b.messages[0].role !== 'user') return 'messages: first message must use the "user" role';
  let breakpoints = 0;
  const countCache = (x: unknown) => {
    if (x && typeof x === 'object' && 'cache_control' in x) breakpoints++;
  };
  (Array.isArray(b.system) ? b.system : []).forEach(countCache);
  (Array.isArray(b.tools) ? b.tools : []).forEach(countCache);
  for (const m of b.messages) if (Array.isArray(m.content)) m.content.forEach(countCache);
  if (breakpoints > 4)
    return `A maximum of 4 blocks with cache_control may be provided. Found ${breakpoints}.`;
  for (let i = 0; i < b.messages.length; i++) {
    const m = b.messages[i];
    if (i > 0 && m.role === b.messages[i - 1].role) return `messages.${i}: roles must alternate`;
    if (m.role !== 'assistant' || !Array.isArray(m.content)) continue;
    const uses = m.content.filter((c: Wire) => c.type === 'tool_use').map((c: Wire) => c.id);
    if (uses.length === 0) continue;
    const nextMsg = b.messages[i + 1];
    if (!nextMsg)
      return `messages.${i}: tool_use ids were found without tool_result blocks immediately after`;
    const answered = new Set(
      (Array.isArray(nextMsg.content) ? nextMsg.content : [])
        .filter((c: Wire) => c.type === 'tool_result')
        .map((c: Wire) => c.tool_use_id),
    );
    for (const u of uses) {
      if (!answered.has(u))
        return `messages.${i + 1}: tool_use id ${u} has no tool_result block immediately after`;
    }
  }
  return undefined;
}
