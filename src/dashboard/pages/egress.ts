import { h, replace, table } from '../dom.js';
import { egressRows, formatBytes, formatTime } from '../format.js';
import type { Page } from '../page.js';
import { href } from '../routes.js';

const COLUMNS = ['Time', 'Task', 'Request', 'Decision', 'Why', 'Status', 'In', 'Out'];

/** Every request the egress proxy decided (the timeline's egress.request), newest first, live. */
export const egressPage: Page = (ctx, root) => {
  const box = h('div');
  root.append(
    h('h1', { text: 'Egress' }),
    h('p', {
      class: 'muted',
      text: 'Requests from the guest through the host proxy. In = bytes to the guest, out = bytes from it.',
    }),
    box,
  );
  const draw = () => {
    const rows = egressRows(ctx.live.timeline);
    replace(
      box,
      rows.length === 0
        ? h('p', { class: 'muted', text: 'The guest has made no request through the proxy yet.' })
        : table(
            COLUMNS,
            rows
              .slice(0, 500)
              .map((r) => [
                formatTime(r.ts),
                r.taskId ? h('a', { href: href('tasks', r.taskId), text: r.taskId }) : '—',
                h('span', { class: 'mono', text: `${r.method} ${r.host}:${r.port}` }),
                h('span', { class: `effect effect-${r.decision}`, text: r.decision }),
                r.reason,
                r.status === undefined ? '—' : String(r.status),
                formatBytes(r.bytesIn),
                formatBytes(r.bytesOut),
              ]),
          ),
    );
  };
  draw();
  return ctx.live.on('timeline', (e) => {
    if (e.type === 'egress.request') draw();
  });
};
