import type { z } from 'zod';
import type { ControllerApi } from '../api/controller.js';
import type { telegramSchema } from '../config/schema.js';
import type { Clock, SecurityRecorder } from '../control/events.js';
import type { ControlStore } from '../control/store.js';
import { TelegramChannel } from './telegram.js';

type TelegramConfig = z.infer<typeof telegramSchema>;

/**
 * Builds the Telegram channel from `[channels.telegram]`, or undefined when it is not enabled.
 * The caller reads the bot token from the keychain (`cowork-vm secrets set telegram`) and passes it.
 */
export function telegramChannelFromConfig(
  config: TelegramConfig,
  deps: {
    api: ControllerApi;
    store: ControlStore;
    token: string;
    recorder?: SecurityRecorder;
    logger?: { warn(message: string): void };
    clock?: Clock;
  },
): TelegramChannel | undefined {
  if (!config.enabled) return undefined;
  return new TelegramChannel({
    ...deps,
    ...(config.apiRoot ? { apiRoot: config.apiRoot.replace(/\/+$/, '') } : {}),
    security: {
      mode: config.mode,
      allowlist: config.allowlist,
      openConfirmed: config.openConfirmed,
      rateLimitPerMinute: config.rateLimitPerMinute,
    },
  });
}
