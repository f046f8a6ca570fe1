/**
 * Where cowork-vm keeps credentials (the Anthropic API key, the Telegram bot token): the OS
 * keychain, behind this one interface. Values never enter the guest and never reach a file.
 */
export interface SecretStore {
  /** The value, or undefined when no secret of that name is stored. */
  get(name: string): Promise<string | undefined>;
  set(name: string, value: string): Promise<void>;
  /** True when something was removed. */
  remove(name: string): Promise<boolean>;
  /** Names only, sorted — never values. */
  list(): Promise<string[]>;
}

/** Well-known secret names. */
export const SECRET_NAMES = { anthropic: 'anthropic', telegram: 'telegram' } as const;
