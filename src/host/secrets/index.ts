export { type ResolvedKey, resolveAnthropicKey } from './anthropic-key.js';
export { KEYCHAIN_SERVICE, KeychainSecretStore, NO_KEYCHAIN_MESSAGE, SECRET_NAME } from './keychain-store.js';
export { SECRET_NAMES, type SecretStore } from './types.js';
