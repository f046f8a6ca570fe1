/**
 * Hash routes of the single page: `#/tasks/t-abc?x=y` → { page: 'tasks', arg: 't-abc', query }.
 * Each page names the contract method it needs: without it the page (and its nav link) is absent.
 */
export const PAGES = [
  { page: 'overview', label: 'Overview', needs: 'status' },
  { page: 'approvals', label: 'Approvals', needs: 'approvals.list' },
  { page: 'tasks', label: 'Tasks', needs: 'tasks.list' },
  { page: 'timeline', label: 'Timeline', needs: 'timeline.query' },
  { page: 'egress', label: 'Egress', needs: 'timeline.query' },
  { page: 'devices', label: 'Devices', needs: 'devices.list' },
  { page: 'policy', label: 'Policy check', needs: 'policy.check' },
] as const;

export type PageName = (typeof PAGES)[number]['page'];

export interface Route {
  page: PageName;
  arg?: string;
  query: URLSearchParams;
}

export function parseRoute(hash: string, allowed: (page: PageName) => boolean): Route {
  const raw = hash.replace(/^#\/?/, '');
  const q = raw.indexOf('?');
  const path = q >= 0 ? raw.slice(0, q) : raw;
  const query = new URLSearchParams(q >= 0 ? raw.slice(q + 1) : '');
  const [first = '', second] = path.split('/');
  const known = PAGES.find((p) => p.page === first);
  if (!known || !allowed(known.page)) return { page: 'overview', query };
  return { page: known.page, ...(second ? { arg: decodeURIComponent(second) } : {}), query };
}

export function href(page: PageName, arg?: string, query?: Record<string, string>): string {
  const qs = query ? new URLSearchParams(query).toString() : '';
  return `#/${page}${arg ? `/${encodeURIComponent(arg)}` : ''}${qs ? `?${qs}` : ''}`;
}
