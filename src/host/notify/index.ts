/** Desktop notifications for pending approvals (org.freedesktop.Notifications over D-Bus). */
export {
  DesktopNotifier,
  type DesktopNotifierOptions,
  escapeMarkup,
  NOTIFICATION_ORIGIN,
  NOTIFICATIONS,
  notificationBody,
} from './desktop.js';
