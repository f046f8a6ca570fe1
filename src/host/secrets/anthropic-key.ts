import { CoworkError } from '../errors.js';
import { SECRET_NAMES, type SecretStore } from './types.js';

export interface ResolvedKey {
  key: string;
  source: 'env' | 'keychain';
}

/**
 * The Anthropic API key for the HOST's model calls: ANTHROPIC_API_KEY in the environment is an
 * explicit override, otherwise the keychain. The key is only ever handed to the SDK client; it
 * never enters the guest (no env var, no file, no argument).
 */
export async function resolveAnthropicKey(
  store: SecretStore,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ResolvedKey> {
  const fromEnv = env.ANTHROPIC_API_KEY?.trim();
  if (fromEnv) return { key: fromEnv, source: 'env' };
  const stored = await store.get(SECRET_NAMES.anthropic);
  if (stored) return { key: stored, source: 'keychain' };
  throw new CoworkError(
    'notFound',
    'no Anthropic API key — run `cowork-vm secrets set anthropic` (stored in the OS keychain) or set ANTHROPIC_API_KEY',
  );
}
