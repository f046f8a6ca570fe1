import type Anthropic from '@anthropic-ai/sdk';
import { APIConnectionError, APIError, AuthenticationError } from '@anthropic-ai/sdk';
import { CoworkError } from '../errors.js';
import { type ModelPrice, type PriceOverride, priceFor } from '../guardrails/pricing.js';
import { KEY_REJECTED_MESSAGE } from './model-call.js';

/** One model the Models API offers, with what cowork-vm knows about its price. */
export interface ListedModel {
  id: string;
  displayName: string;
  createdAt: string;
  /** USD per million tokens, from the pricing table or a `[pricing."id"]` override. */
  price?: ModelPrice;
}

/**
 * Every model the Models API (GET /v1/models) offers to this key, all pages, newest first as the
 * API returns them, each marked with its known price. `cowork-vm models` prints this.
 */
export async function listModels(
  client: Anthropic,
  opts: { pricing?: Readonly<Record<string, PriceOverride>>; signal?: AbortSignal; pageSize?: number } = {},
): Promise<ListedModel[]> {
  const out: ListedModel[] = [];
  // The SDK's page iterator follows has_more / last_id across pages.
  for await (const m of client.models.list({ limit: opts.pageSize ?? 100 }, { signal: opts.signal })) {
    const price = priceFor(m.id, opts.pricing);
    out.push({
      id: m.id,
      displayName: m.display_name,
      createdAt: m.created_at,
      ...(price ? { price } : {}),
    });
  }
  return out;
}

/**
 * `cowork-vm models`: the Models API's list for this host's key (ANTHROPIC_API_KEY, else the
 * keychain) at ANTHROPIC_BASE_URL (else the real API), priced with the user's config overrides.
 */
export async function availableModels(
  opts: { configFile?: string; env?: NodeJS.ProcessEnv; signal?: AbortSignal } = {},
): Promise<{ models: ListedModel[]; configuredModel: string }> {
  const env = opts.env ?? process.env;
  const [{ default: Anthropic }, { loadConfig }, { KeychainSecretStore, resolveAnthropicKey }] =
    await Promise.all([
      import('@anthropic-ai/sdk'),
      import('../config/index.js'),
      import('../secrets/index.js'),
    ]);
  const { config } = loadConfig({ configFile: opts.configFile, env });
  const { key } = await resolveAnthropicKey(new KeychainSecretStore(), env);
  const client = new Anthropic({
    apiKey: key,
    ...(env.ANTHROPIC_BASE_URL ? { baseURL: env.ANTHROPIC_BASE_URL } : {}),
  });
  try {
    const models = await listModels(client, { pricing: config.pricing, signal: opts.signal });
    return { models, configuredModel: config.agent.model };
  } catch (err) {
    throw modelsApiError(err, env.ANTHROPIC_BASE_URL ?? 'https://api.anthropic.com');
  }
}

/** One line for a failed Models API call: rejected key, no connection, or the API's own error. */
function modelsApiError(err: unknown, baseURL: string): CoworkError {
  if (err instanceof AuthenticationError) return new CoworkError('denied', KEY_REJECTED_MESSAGE, err);
  if (err instanceof APIConnectionError)
    return new CoworkError(
      'unavailable',
      `cannot reach the Anthropic API at ${baseURL} (${err.message})`,
      err,
    );
  if (err instanceof APIError)
    return new CoworkError(
      'unavailable',
      `Anthropic API error ${err.status ?? ''} (${err.type ?? 'api_error'}): ${err.apiMessage ?? err.message}`,
      err,
    );
  return CoworkError.from(err);
}
