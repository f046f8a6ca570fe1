import { field, h, notice, replace } from '../dom.js';
import { formatDuration } from '../format.js';
import { act, type Page } from '../page.js';
import { href } from '../routes.js';
import type { Status, TaskSummary } from '../types.js';

/** VM state, accelerator, share, uptime, egress, running tasks, pending approvals; stop for admins. */
export const overviewPage: Page = (ctx, root) => {
  const { api, live } = ctx;
  const facts = h('dl', { class: 'facts' });
  const running = h('div');
  const pending = h('div');
  const out = h('div', { 'aria-live': 'polite' });
  let status: Status | undefined;
  const uptime = h('span');

  root.append(
    h('h1', { text: 'Overview' }),
    out,
    h('section', { class: 'card' }, h('h2', { text: 'Sandbox' }), facts),
    h('section', { class: 'card' }, h('h2', { text: 'Running tasks' }), running),
    h('section', { class: 'card' }, h('h2', { text: 'Pending approvals' }), pending),
  );
  if (api.can('stop')) root.append(stopControl(ctx, out));

  const tickUptime = () => {
    const started = status?.vm.startedAt ? Date.parse(status.vm.startedAt) : Number.NaN;
    uptime.textContent = Number.isFinite(started) ? formatDuration(Date.now() - started) : '—';
  };
  const drawStatus = (s: Status) => {
    status = s;
    replace(
      facts,
      ...field('State', h('span', { class: `state state-${s.state}`, text: s.state })),
      ...field('Driver', s.vm.driver),
      ...field('Accelerator', s.vm.accel),
      ...field('Workspace share', s.vm.share),
      ...field('Image', s.vm.image),
      ...field('CPUs / memory', `${s.vm.cpus} × ${s.vm.memoryMiB} MiB`),
      ...field('Uptime', uptime),
      ...field(
        'Egress proxy',
        s.egress
          ? s.egress.listening
            ? `listening on port ${s.egress.port ?? '?'}`
            : 'not listening'
          : 'off',
      ),
      ...field('Background jobs', String(s.jobs?.running ?? 0)),
      ...field(
        'Forwards',
        s.forwards?.length ? s.forwards.map((f) => `guest ${f.guestPort} → ${f.url}`).join(', ') : 'none',
        'mono',
      ),
      ...field(
        'Cache disk',
        s.cache
          ? `${s.cache.name} (${s.cache.kind}, up to ${Math.round(s.cache.sizeBytes / 1024 ** 3)} GiB)`
          : 'none',
      ),
      ...field('Workspace', s.workspace, 'mono'),
    );
    tickUptime();
  };
  const drawPending = () => {
    const list = live.approvals;
    replace(
      pending,
      list.length === 0
        ? h('p', { class: 'muted', text: 'Nothing is waiting for an answer.' })
        : h(
            'ul',
            { class: 'plain' },
            ...list.map((a) =>
              h(
                'li',
                {},
                h('code', { text: a.command ?? a.tool }),
                ' ',
                h('span', { class: `risk risk-${a.risk}`, text: a.risk }),
              ),
            ),
          ),
      list.length > 0
        ? h('p', {}, h('a', { href: href('approvals'), text: `Answer ${list.length} on the approvals page` }))
        : null,
    );
  };
  const refresh = async () => {
    await act(null, out, async () => {
      drawStatus(await api.call<Status>('status'));
      const tasks = await api.call<TaskSummary[]>('tasks.list', { limit: 50 });
      const now = tasks.filter((t) => t.status === 'running');
      replace(
        running,
        now.length === 0
          ? h('p', { class: 'muted', text: 'No task is running.' })
          : h(
              'ul',
              { class: 'plain' },
              ...now.map((t) =>
                h('li', {}, h('a', { href: href('tasks', t.id), text: `${t.id} — ${t.title}` })),
              ),
            ),
      );
    });
  };

  drawPending();
  void refresh();
  const timer = window.setInterval(tickUptime, 1000);
  const offApprovals = live.on('approvals', drawPending);
  const offTimeline = live.on('timeline', (e) => {
    if (e.type.startsWith('task.') || e.type.startsWith('vm.')) void refresh();
  });
  return () => {
    window.clearInterval(timer);
    offApprovals();
    offTimeline();
  };
};

/** Stopping powers the guest off: it takes two clicks, the second on a button that says so. */
function stopControl(ctx: Parameters<Page>[0], out: HTMLElement): HTMLElement {
  const box = h('section', { class: 'card danger-zone' }, h('h2', { text: 'Stop the sandbox' }));
  const confirm = h('button', {
    type: 'button',
    class: 'danger',
    hidden: true,
    text: 'Yes, power the guest off',
  });
  const ask = h('button', { type: 'button', text: 'Stop sandbox…' });
  ask.addEventListener('click', () => {
    confirm.hidden = false;
    confirm.focus();
  });
  confirm.addEventListener('click', () =>
    act(confirm, out, async () => {
      await ctx.api.call('stop');
      out.replaceChildren(notice('ok', 'The sandbox is stopping; workspace files stay.'));
    }),
  );
  box.append(
    h('p', { class: 'muted', text: 'The guest is powered off; files in the workspace stay.' }),
    ask,
    ' ',
    confirm,
  );
  return box;
}
