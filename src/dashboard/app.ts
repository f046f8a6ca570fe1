import { Api, ApiError, loadSession } from './api.js';
import { h, replace } from './dom.js';
import { connectEvents } from './events.js';
import { LiveState } from './live.js';
import type { Page, PageContext } from './page.js';
import { approvalsPage } from './pages/approvals.js';
import { devicesPage } from './pages/devices.js';
import { egressPage } from './pages/egress.js';
import { overviewPage } from './pages/overview.js';
import { policyPage } from './pages/policy.js';
import { tasksPage } from './pages/tasks.js';
import { timelinePage } from './pages/timeline.js';
import { href, PAGES, type PageName, parseRoute } from './routes.js';
import type { PendingApproval, Session, TimelineEntry } from './types.js';

const PAGE_VIEWS: Record<PageName, Page> = {
  overview: overviewPage,
  approvals: approvalsPage,
  tasks: tasksPage,
  timeline: timelinePage,
  egress: egressPage,
  devices: devicesPage,
  policy: policyPage,
};

/** Timeline history loaded at start: pages of 1000 (the contract's cap), the newest kept. */
const HISTORY_PAGES = 20;

async function loadHistory(api: Api, live: LiveState, from = 0): Promise<void> {
  let afterId = from;
  for (let i = 0; i < HISTORY_PAGES; i++) {
    const page = await api.call<TimelineEntry[]>('timeline.query', { afterId, limit: 1000 });
    live.addTimeline(page);
    const last = page.at(-1);
    if (page.length < 1000 || !last) return;
    afterId = last.id;
  }
}

function signedOut(main: HTMLElement, why: string): void {
  replace(
    main,
    h(
      'section',
      { class: 'card' },
      h('h1', { text: 'Not signed in' }),
      h('p', { text: why }),
      h(
        'p',
        {},
        'Run ',
        h('code', { text: 'cowork-vm dashboard' }),
        ' on the host and open the one-time URL it prints.',
      ),
    ),
  );
}

function renderNav(nav: HTMLElement, api: Api, current: PageName, pending: number): void {
  const links = PAGES.filter((p) => api.can(p.needs)).map((p) =>
    h(
      'li',
      {},
      h(
        'a',
        { href: href(p.page), 'aria-current': p.page === current ? 'page' : undefined },
        p.label,
        p.page === 'approvals' ? h('span', { id: 'pending-badge', class: 'badge' }) : null,
      ),
    ),
  );
  replace(nav, h('ul', {}, ...links));
  updateBadge(pending);
}

/** Only the count changes: the links stay, so keyboard focus on them survives an update. */
function updateBadge(pending: number): void {
  const badge = document.getElementById('pending-badge');
  if (!badge) return;
  badge.hidden = pending === 0;
  badge.textContent = String(pending);
  badge.setAttribute('aria-label', `${pending} pending`);
}

function renderWho(el: HTMLElement, session: Session, live: LiveState): void {
  const state = { live: 'live', connecting: 'connecting…', lost: 'disconnected' }[live.connection];
  replace(
    el,
    h('span', { class: 'who', text: session.deviceName }),
    h('span', { class: `role role-${session.role}`, text: session.role }),
    h('span', { class: `conn conn-${live.connection}`, role: 'status', text: state }),
  );
}

async function main(): Promise<void> {
  const mainEl = document.getElementById('view') as HTMLElement;
  const nav = document.getElementById('nav') as HTMLElement;
  const whoEl = document.getElementById('session') as HTMLElement;
  let session: Session | undefined;
  try {
    session = await loadSession();
  } catch (err) {
    return signedOut(mainEl, err instanceof Error ? err.message : String(err));
  }
  if (!session) return signedOut(mainEl, 'This browser has no dashboard session (or it expired).');
  const api = new Api(session);
  const live = new LiveState();
  const refill = () => void loadHistory(api, live, live.timeline.at(-1)?.id ?? 0).catch(() => undefined);
  connectEvents(live, refill);
  live.on('connection', () => renderWho(whoEl, session, live));
  renderWho(whoEl, session, live);
  if (api.can('approvals.list')) {
    api.call<PendingApproval[]>('approvals.list').then(
      (list) => live.setApprovals(list),
      () => undefined,
    );
  }
  if (api.can('timeline.query')) await loadHistory(api, live).catch(() => undefined);

  let cleanup: (() => void) | undefined;
  const show = () => {
    cleanup?.();
    const route = parseRoute(location.hash, (p) => api.can(PAGES.find((x) => x.page === p)?.needs ?? ''));
    renderNav(nav, api, route.page, live.approvals.length);
    const root = h('div', { class: 'page', 'data-page': route.page });
    replace(mainEl, root);
    const ctx: PageContext = { api, session, live, route, navigate: (hash) => (location.hash = hash) };
    cleanup = PAGE_VIEWS[route.page](ctx, root);
    mainEl.focus({ preventScroll: true });
  };
  live.on('approvals', (list) => updateBadge(list.length));
  window.addEventListener('hashchange', show);
  show();
}

main().catch((err: unknown) => {
  const el = document.getElementById('view');
  if (el) {
    const msg = err instanceof ApiError ? `${err.code}: ${err.message}` : String(err);
    replace(
      el,
      h('p', { class: 'notice error', role: 'alert', text: `The dashboard failed to start: ${msg}` }),
    );
  }
});
