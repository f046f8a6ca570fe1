export {
  ChannelAccess,
  type ChannelSecurity,
  type ChannelSecurityInput,
  type ChannelUser,
  channelSecuritySchema,
} from './access.js';
export { telegramChannelFromConfig } from './from-config.js';
export { FixedWindowLimiter } from './rate-limit.js';
export { RemoteAccess, type RemoteAccessOptions } from './remote-access.js';
export { TelegramChannel, type TelegramChannelOptions } from './telegram.js';
