import { h, replace, tableRow } from '../dom.js';
import { formatTime, summarize } from '../format.js';
import type { Page } from '../page.js';
import { href } from '../routes.js';
import type { TimelineEntry } from '../types.js';

const COLUMNS = ['Time', 'Id', 'Task', 'Type', 'What'];
/** Rows drawn at most (newest); the filters narrow what they are drawn from. */
const SHOWN = 500;

/** The timeline, filtered by task and type; new entries appear as they are recorded when following. */
export const timelinePage: Page = (ctx, root) => {
  const { live, route } = ctx;
  let task = route.query.get('task') ?? '';
  let type = route.query.get('type') ?? '';
  const taskSelect = h('select', { id: 'tl-task' });
  const typeSelect = h('select', { id: 'tl-type' });
  const follow = h('input', { id: 'tl-follow', type: 'checkbox', checked: true });
  const held = h('p', { class: 'muted', role: 'status' });
  const body = h('tbody');
  const countText = h('p', { class: 'muted' });
  let waiting = 0;

  root.append(
    h('h1', { text: 'Timeline' }),
    h(
      'form',
      { class: 'card filters', 'aria-label': 'Filter the timeline' },
      h('div', { class: 'field' }, h('label', { for: 'tl-task', text: 'Task' }), taskSelect),
      h('div', { class: 'field' }, h('label', { for: 'tl-type', text: 'Type' }), typeSelect),
      h('div', { class: 'field check' }, follow, h('label', { for: 'tl-follow', text: 'Follow live' })),
    ),
    held,
    countText,
    h(
      'table',
      { class: 'grid timeline' },
      h('thead', {}, h('tr', {}, ...COLUMNS.map((c) => h('th', { scope: 'col', text: c })))),
      body,
    ),
  );

  const matches = (e: TimelineEntry) =>
    (task === '' || (task === '-' ? e.taskId === null : e.taskId === task)) &&
    (type === '' || e.type === type || (type.endsWith('.') && e.type.startsWith(type)));
  const row = (e: TimelineEntry) => {
    const tr = tableRow(COLUMNS, [
      h('time', { datetime: new Date(e.ts).toISOString(), text: formatTime(e.ts) }),
      String(e.id),
      e.taskId ? h('a', { href: href('tasks', e.taskId), text: e.taskId }) : '—',
      h('span', { class: `type type-${e.type.split('.')[0]}`, text: e.type }),
      h(
        'details',
        {},
        h('summary', { text: summarize(e) }),
        h('pre', { text: JSON.stringify(e.data, null, 2) }),
      ),
    ]);
    tr.dataset.id = String(e.id);
    return tr;
  };
  let known = '';
  const options = () => {
    // Rebuilt only when a task or type appears: an open <select> is not closed under the user.
    const key = `${new Set(live.timeline.map((e) => e.taskId)).size}/${new Set(live.timeline.map((e) => e.type)).size}`;
    if (key === known) return;
    known = key;
    const tasks = [...new Set(live.timeline.map((e) => e.taskId).filter((t): t is string => t !== null))];
    const types = [...new Set(live.timeline.map((e) => e.type))].sort();
    const prefixes = [...new Set(types.map((t) => `${t.split('.')[0]}.`))].filter((p) =>
      types.some((t) => t.startsWith(p) && t !== p),
    );
    fill(taskSelect, task, [
      ['', 'All tasks'],
      ['-', 'Not in a task'],
      ...tasks.reverse().map((t) => [t, t] as [string, string]),
    ]);
    fill(typeSelect, type, [
      ['', 'All types'],
      ...prefixes.map((p) => [p, `${p}*`] as [string, string]),
      ...types.map((t) => [t, t] as [string, string]),
    ]);
  };
  const draw = () => {
    waiting = 0;
    held.textContent = '';
    const shown = live.timeline.filter(matches).slice(-SHOWN).reverse();
    replace(body, ...shown.map(row));
    countText.textContent =
      shown.length === 0 ? 'No entries match.' : `${shown.length} entries, newest first.`;
    options();
  };
  const onFilter = () => {
    task = taskSelect.value;
    type = typeSelect.value;
    // The address keeps the filter (a link or reload shows the same), without redrawing the page.
    history.replaceState(
      null,
      '',
      href('timeline', undefined, { ...(task ? { task } : {}), ...(type ? { type } : {}) }),
    );
    draw();
  };
  taskSelect.addEventListener('change', onFilter);
  typeSelect.addEventListener('change', onFilter);
  follow.addEventListener('change', () => {
    if (follow.checked) draw();
  });

  draw();
  return live.on('timeline', (e) => {
    if (!matches(e)) return;
    if (!follow.checked) {
      waiting++;
      held.textContent = `${waiting} new ${waiting === 1 ? 'entry' : 'entries'} — tick "Follow live" to show them.`;
      return;
    }
    body.prepend(row(e));
    while (body.rows.length > SHOWN) body.lastElementChild?.remove();
    countText.textContent = `${body.rows.length} entries, newest first.`;
    options();
  });
};

function fill(select: HTMLSelectElement, value: string, opts: [string, string][]): void {
  if (!opts.some(([v]) => v === value)) opts.push([value, value]);
  replace(select, ...opts.map(([v, label]) => h('option', { value: v, text: label, selected: v === value })));
  select.value = value;
}
