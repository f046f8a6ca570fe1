import type { Api } from './api.js';
import type { LiveState } from './live.js';
import type { Route } from './routes.js';
import type { Session } from './types.js';

/** What every page is given. A page draws into `root` and returns its cleanup (listeners, timers). */
export interface PageContext {
  api: Api;
  session: Session;
  live: LiveState;
  route: Route;
  navigate(hash: string): void;
}

export type Page = (ctx: PageContext, root: HTMLElement) => () => void;

/** Runs an action from a button: disables it while it runs, shows the error in `out`. */
export async function act(button: HTMLButtonElement | null, out: HTMLElement, fn: () => Promise<void>) {
  if (button) button.disabled = true;
  out.replaceChildren();
  try {
    await fn();
  } catch (err) {
    const p = document.createElement('p');
    p.className = 'notice error';
    p.setAttribute('role', 'alert');
    p.textContent = err instanceof Error ? err.message || String(err) : String(err);
    out.replaceChildren(p);
  } finally {
    if (button) button.disabled = false;
  }
}
