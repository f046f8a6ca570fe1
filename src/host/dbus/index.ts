/**
 * D-Bus for the host's desktop integration (notifications, the tray): a typed connection over
 * @homebridge/dbus-native's transport, with our own dispatch (see connection.ts).
 */
export {
  type CallRequest,
  DbusCallError,
  DbusConnection,
  type ExportedInterface,
  type ExportedMethod,
  type SignalHandler,
  type SignalRule,
} from './connection.js';
export type { RawMessage } from './native.js';
export { type OutVariant, plain, readVariant, signatureOf, variant } from './variant.js';
