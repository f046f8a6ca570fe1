import type Anthropic from '@anthropic-ai/sdk';
import {
  APIConnectionError,
  APIError,
  APIUserAbortError,
  AuthenticationError,
  NotFoundError,
} from '@anthropic-ai/sdk';
import { CoworkError } from '../errors.js';
import type { ModelUsage, RetryPolicy } from './types.js';

export const DEFAULT_RETRY: RetryPolicy = { maxRetries: 4, baseDelayMs: 500, maxDelayMs: 30_000 };
/** A server asking for longer than this is treated as "not now": the task fails instead of hanging. */
const MAX_RETRY_AFTER_MS = 120_000;

export const KEY_REJECTED_MESSAGE = 'Anthropic API key rejected — run `cowork-vm secrets set anthropic`';

/** The one line for a model the API does not know (404 not_found_error on a Messages call). */
export function unknownModelMessage(model: string, apiMessage?: string): string {
  return (
    `the Anthropic API does not know the model "${model}"${apiMessage ? ` (${apiMessage})` : ''} — ` +
    'pick another with `cowork-vm run --model ID` or `[agent] model = "ID"` in config.toml; ' +
    '`cowork-vm models` lists the models your key can use'
  );
}

export interface ModelCallResult {
  message: Anthropic.Message;
  usage: ModelUsage;
  attempt: number;
  durationMs: number;
}

export interface RetryNotice {
  attempt: number;
  status: number | null;
  errorType: string;
  message: string;
  delayMs: number;
}

export interface ModelCallOptions {
  client: Anthropic;
  params: Anthropic.MessageCreateParamsNonStreaming;
  signal: AbortSignal;
  retry: RetryPolicy;
  onText?: (text: string) => void;
  onRetry?: (notice: RetryNotice) => void;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
}

export function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new CoworkError('cancelled', 'task cancelled'));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new CoworkError('cancelled', 'task cancelled'));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export function toModelUsage(u: Anthropic.Usage): ModelUsage {
  return {
    input: u.input_tokens ?? 0,
    output: u.output_tokens ?? 0,
    cacheWrite: u.cache_creation_input_tokens ?? 0,
    cacheRead: u.cache_read_input_tokens ?? 0,
  };
}

/** 429, 5xx (529 = overloaded), an `overloaded_error`/`api_error` event mid-stream, or no connection. */
function isRetryable(err: unknown): boolean {
  if (err instanceof APIUserAbortError) return false;
  if (err instanceof APIConnectionError) return true;
  if (!(err instanceof APIError)) return false;
  if (err.status === undefined) return err.type === 'overloaded_error' || err.type === 'api_error';
  return err.status === 429 || err.status >= 500;
}

/** The server's retry-after-ms / retry-after (seconds or HTTP date), when it gave a usable one. */
export function retryAfterMs(headers: Headers | undefined, now: number = Date.now()): number | undefined {
  const ms = Number.parseFloat(headers?.get('retry-after-ms') ?? '');
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const raw = headers?.get('retry-after');
  if (!raw) return undefined;
  const s = Number.parseFloat(raw);
  if (Number.isFinite(s) && s >= 0) return s * 1000;
  const date = Date.parse(raw);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function backoffMs(retry: RetryPolicy, attempt: number): number {
  const exp = Math.min(retry.baseDelayMs * 2 ** (attempt - 1), retry.maxDelayMs);
  return Math.round(exp * (1 - Math.random() * 0.25));
}

function describeApiError(err: unknown): { status: number | null; errorType: string; message: string } {
  if (err instanceof APIError) {
    return {
      status: err.status ?? null,
      errorType: err.type ?? (err instanceof APIConnectionError ? 'connection_error' : 'api_error'),
      message: err.apiMessage ?? err.message,
    };
  }
  return { status: null, errorType: 'unknown', message: err instanceof Error ? err.message : String(err) };
}

function errorCodeFor(err: unknown): 'unavailable' | 'invalidArgument' | 'denied' {
  if (isRetryable(err) || !(err instanceof APIError)) return 'unavailable';
  if (err.status === 403) return 'denied';
  if (err.status !== undefined && err.status >= 400 && err.status < 500) return 'invalidArgument';
  return 'unavailable';
}

/** One streamed attempt; rejects with the SDK's error. */
async function streamOnce(opts: ModelCallOptions): Promise<Anthropic.Message> {
  // maxRetries: 0 — retries are ours, so each attempt is visible (timeline, terminal).
  const stream = opts.client.messages.stream(opts.params, { signal: opts.signal, maxRetries: 0 });
  if (opts.onText) stream.on('text', (delta) => opts.onText?.(delta));
  return await stream.finalMessage();
}

/**
 * One model call: streamed, retried with backoff on 429/5xx/overloaded (honouring the
 * server's retry-after), mapped to CoworkError otherwise. Aborting `signal` stops the stream
 * at once and rejects with 'cancelled'.
 */
export async function callModel(opts: ModelCallOptions): Promise<ModelCallResult> {
  for (let attempt = 1; ; attempt++) {
    if (opts.signal.aborted) throw new CoworkError('cancelled', 'task cancelled');
    const started = performance.now();
    try {
      const message = await streamOnce(opts);
      return {
        message,
        usage: toModelUsage(message.usage),
        attempt,
        durationMs: performance.now() - started,
      };
    } catch (err) {
      if (opts.signal.aborted || err instanceof APIUserAbortError) {
        throw new CoworkError('cancelled', 'task cancelled while waiting for the model', err);
      }
      if (err instanceof AuthenticationError) throw new CoworkError('denied', KEY_REJECTED_MESSAGE, err);
      // A retired or misspelt model: one line naming it and how to choose another.
      if (err instanceof NotFoundError && (err.type === 'not_found_error' || err.type == null)) {
        throw new CoworkError(
          'notFound',
          unknownModelMessage(opts.params.model, err.apiMessage ?? undefined),
          err,
        );
      }
      const info = describeApiError(err);
      const hinted = err instanceof APIError ? retryAfterMs(err.headers) : undefined;
      if (!isRetryable(err) || attempt > opts.retry.maxRetries || (hinted ?? 0) > MAX_RETRY_AFTER_MS) {
        const status = info.status === null ? '' : ` ${info.status}`;
        const gaveUp = isRetryable(err) ? ` after ${attempt} attempt${attempt === 1 ? '' : 's'}` : '';
        throw new CoworkError(
          errorCodeFor(err),
          `Anthropic API error${status} (${info.errorType})${gaveUp}: ${info.message}`,
          err,
        );
      }
      const delayMs = hinted ?? backoffMs(opts.retry, attempt);
      opts.onRetry?.({ attempt, ...info, delayMs });
      await opts.sleep(delayMs, opts.signal);
    }
  }
}
