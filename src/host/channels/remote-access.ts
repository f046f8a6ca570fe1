import type { ControllerApi } from '../api/controller.js';
import type { CoworkConfig } from '../config/schema.js';
import type { Clock, SecurityRecorder } from '../control/events.js';
import { assertListenAllowed, controlServerFromConfig } from '../control/from-config.js';
import type { ControlServer } from '../control/server.js';
import { ControlStore, defaultControlStorePath } from '../control/store.js';
import { CoworkError } from '../errors.js';
import type { HostPaths } from '../paths.js';
import { SECRET_NAMES, type SecretStore } from '../secrets/types.js';
import { telegramChannelFromConfig } from './from-config.js';
import type { TelegramChannel } from './telegram.js';

export interface RemoteAccessOptions {
  config: Pick<CoworkConfig, 'control' | 'channels'>;
  api: ControllerApi;
  paths: HostPaths;
  /** The Timeline: every auth/pairing failure and lockout is recorded there. */
  recorder?: SecurityRecorder;
  /** Where the Telegram bot token lives (the keychain); needed only when Telegram is enabled. */
  secrets?: SecretStore;
  /** `cowork-vm start --listen HOST:PORT [--allow-remote]` override the [control] section. */
  listen?: string;
  allowRemote?: boolean;
  logger?: { warn(message: string): void };
  clock?: Clock;
}

/**
 * Everything remote, started together by the controller: the WebSocket control API (if
 * `control.listen` or --listen is set) and the Telegram channel (if enabled), sharing one device
 * store. Fails closed: an enabled channel without its token, or a bad listen address, fails the
 * start instead of silently running without it.
 */
export class RemoteAccess {
  private constructor(
    readonly store: ControlStore,
    readonly server: ControlServer | undefined,
    readonly url: string | undefined,
    readonly telegram: TelegramChannel | undefined,
  ) {}

  static async start(opts: RemoteAccessOptions): Promise<RemoteAccess> {
    const control = {
      ...opts.config.control,
      ...(opts.listen !== undefined ? { listen: opts.listen } : {}),
      ...(opts.allowRemote !== undefined ? { allowRemote: opts.allowRemote } : {}),
    };
    // Refused before the device store is opened or anything listens.
    assertListenAllowed(control);
    const tg = opts.config.channels.telegram;
    const store = new ControlStore({
      file: defaultControlStorePath(opts.paths),
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...(opts.recorder ? { recorder: opts.recorder } : {}),
    });
    let server: ControlServer | undefined;
    let telegram: TelegramChannel | undefined;
    try {
      const deps = { api: opts.api, store, recorder: opts.recorder, logger: opts.logger, clock: opts.clock };
      server = controlServerFromConfig(control, deps);
      const url = server ? (await server.start()).url : undefined;
      if (tg.enabled) {
        const token = await opts.secrets?.get(SECRET_NAMES.telegram);
        if (!token) {
          throw new CoworkError(
            'unavailable',
            'channels.telegram is enabled but no bot token is stored: run `cowork-vm secrets set telegram`',
          );
        }
        telegram = telegramChannelFromConfig(tg, { ...deps, token });
        await telegram?.start();
      }
      return new RemoteAccess(store, server, url, telegram);
    } catch (err) {
      await telegram?.stop().catch(() => {});
      await server?.close().catch(() => {});
      store.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.telegram?.stop().catch(() => {});
    await this.server?.close();
    this.store.close();
  }
}
