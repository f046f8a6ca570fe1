import { AsyncEntry } from '@napi-rs/keyring';
import { z } from 'zod';
import { CoworkError } from '../errors.js';
import type { SecretStore } from './types.js';

export const KEYCHAIN_SERVICE = 'cowork-vm';
/**
 * The keychain cannot enumerate entries portably, so the list of names is itself a keychain
 * entry (never a file). The name cannot collide: it fails SECRET_NAME.
 */
const INDEX_ACCOUNT = '__cowork-vm-index__';

export const SECRET_NAME = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9._-]{0,63}$/,
    'secret names are 1-64 of a-z 0-9 . _ - (starting with a letter or digit)',
  );

export const NO_KEYCHAIN_MESSAGE =
  'no OS keychain available (Secret Service not running) — start one (e.g. gnome-keyring) or set ANTHROPIC_API_KEY for this shell';

const indexSchema = z.array(SECRET_NAME);

function validName(name: string): string {
  const r = SECRET_NAME.safeParse(name);
  if (!r.success)
    throw new CoworkError('invalidArgument', `invalid secret name "${name}": ${r.error.issues[0]?.message}`);
  return r.data;
}

/**
 * SecretStore over the OS keychain via @napi-rs/keyring (macOS Keychain, Windows Credential
 * Manager, Secret Service on Linux). On Linux the store is pinned to the Secret Service: the
 * library would otherwise fall back to the kernel keyring, which forgets everything at logout.
 * No keychain → CoworkError('unavailable'); there is deliberately no file fallback.
 */
export class KeychainSecretStore implements SecretStore {
  readonly #service: string;

  constructor(opts: { service?: string } = {}) {
    this.#service = opts.service ?? KEYCHAIN_SERVICE;
  }

  async get(name: string): Promise<string | undefined> {
    const value = await this.#op(() => this.#entry(validName(name)).getPassword());
    return value ?? undefined;
  }

  async set(name: string, value: string): Promise<void> {
    validName(name);
    if (value === '')
      throw new CoworkError('invalidArgument', `refusing to store an empty value for secret "${name}"`);
    await this.#op(() => this.#entry(name).setPassword(value));
    const names = await this.list();
    if (!names.includes(name)) await this.#writeIndex([...names, name]);
  }

  async remove(name: string): Promise<boolean> {
    validName(name);
    const removed = await this.#op(() => this.#entry(name).deleteCredential());
    const names = await this.list();
    if (names.includes(name)) await this.#writeIndex(names.filter((n) => n !== name));
    return removed;
  }

  async list(): Promise<string[]> {
    const raw = await this.#op(() => this.#entry(INDEX_ACCOUNT).getPassword());
    if (raw == null) return [];
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      parsed = undefined;
    }
    const r = indexSchema.safeParse(parsed);
    if (!r.success) {
      throw new CoworkError(
        'internal',
        `the keychain's list of cowork-vm secret names is corrupt — remove the "${INDEX_ACCOUNT}" entry of service "${this.#service}" and set the secrets again`,
      );
    }
    return [...r.data].sort();
  }

  async #writeIndex(names: string[]): Promise<void> {
    const sorted = [...new Set(names)].sort();
    if (sorted.length === 0) await this.#op(() => this.#entry(INDEX_ACCOUNT).deleteCredential());
    else await this.#op(() => this.#entry(INDEX_ACCOUNT).setPassword(JSON.stringify(sorted)));
  }

  #entry(account: string): AsyncEntry {
    return new AsyncEntry(this.#service, account, { linux: { store: 'secret-service' } });
  }

  /** Runs a keychain operation; any platform failure becomes the fail-closed 'unavailable' error. */
  async #op<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof CoworkError) throw err;
      const detail = err instanceof Error ? err.message : String(err);
      // No bus / no Secret Service on it → the documented message; anything else (locked,
      // refused) names the keychain's own words so the user can act on them.
      const noService =
        /dbus|platform storage|ServiceUnknown|not provided by any \.service|No such file/i.test(detail);
      const message = noService
        ? NO_KEYCHAIN_MESSAGE
        : `the OS keychain refused the operation (${detail}) — unlock it, or set ANTHROPIC_API_KEY for this shell`;
      throw new CoworkError('unavailable', message, err);
    }
  }
}
