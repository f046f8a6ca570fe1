/**
 * The web dashboard's server side: the HTTP server the controller runs on 127.0.0.1 (its pages
 * live in src/dashboard/), its login tokens and sessions, and how a login is bound to a device.
 */
export { DASHBOARD_METHODS, MAX_CALL_BODY_BYTES } from './api-routes.js';
export { ASSETS, PACKAGE_ROOT } from './assets.js';
export { CSP, CSRF_HEADER, SECURITY_HEADERS, sessionCookieName } from './http.js';
export { DASHBOARD_CHANNEL, loginBinding } from './login.js';
export { LOGIN_FAILURES } from './login-failures.js';
export { DashboardServer, type DashboardServerOptions } from './server.js';
export {
  DashboardAuth,
  type DashboardAuthOptions,
  type DashboardSession,
  LOGIN_TOKEN_TTL_MS,
  MAX_LIVE_TOKENS,
  MAX_SESSIONS,
  SESSION_IDLE_MS,
  type SessionBinding,
} from './sessions.js';
