import { field, h, notice, replace } from '../dom.js';
import { verdictWords } from '../format.js';
import { act, type PageContext } from '../page.js';
import { href } from '../routes.js';
import { budgetMeters, type ToolStep, toolSteps, workspaceChanges } from '../task-view-model.js';
import type { TaskSummary, TimelineEntry } from '../types.js';

/** One task: its live model text, tool calls with their decisions, budget meters, cancel. */
export function taskView(ctx: PageContext, root: HTMLElement, id: string): () => void {
  const { api, live } = ctx;
  const out = h('div', { 'aria-live': 'polite' });
  const facts = h('dl', { class: 'facts' });
  const actions = h('div', { class: 'buttons' });
  const meters = h('div', { class: 'meters' });
  const text = h('pre', { class: 'model-text', 'aria-live': 'polite', 'aria-label': 'Model text' });
  const steps = h('ol', { class: 'steps' });
  const changes = h('div', { class: 'changes' });
  const patch = h('div', { class: 'patch' });
  let patchOf: string | undefined;
  let entries: TimelineEntry[] = live.entriesOf(id);
  const seen = new Set(entries.map((e) => e.id));

  root.append(
    h('p', {}, h('a', { href: href('tasks'), text: '← All tasks' })),
    h('h1', {}, 'Task ', h('span', { class: 'mono', text: id })),
    out,
    h('section', { class: 'card' }, facts, actions),
    h('section', { class: 'card' }, h('h2', { text: 'Budget' }), meters),
    h('section', { class: 'card' }, h('h2', { text: 'Model text (live)' }), text),
    h('section', { class: 'card' }, h('h2', { text: 'Tool calls' }), steps),
    h('section', { class: 'card' }, h('h2', { text: 'Workspace changes' }), changes, patch),
    h(
      'p',
      {},
      h('a', { href: href('timeline', undefined, { task: id }), text: 'This task in the timeline' }),
    ),
  );
  text.textContent = live.taskText.get(id) ?? '';

  const drawSummary = (t: TaskSummary) => {
    replace(
      facts,
      ...field('Title', t.title),
      ...field('Status', h('span', { class: `state state-${t.status}`, text: t.outcome ?? t.status })),
      ...field('Origin', `${t.origin} (${t.context})`),
      ...field('Started', new Date(t.createdAt).toLocaleString()),
      ...field('Finished', t.finishedAt ? new Date(t.finishedAt).toLocaleString() : '—'),
      ...field('Summary', t.summary ?? '—'),
    );
    replace(actions);
    if (t.status === 'running' && api.can('tasks.cancel')) {
      const cancel = h('button', { type: 'button', class: 'danger', text: 'Cancel task' });
      cancel.addEventListener('click', () =>
        act(cancel, out, async () => {
          await api.call('tasks.cancel', { id });
          out.replaceChildren(notice('ok', 'Cancelled.'));
        }),
      );
      actions.append(cancel);
    }
  };
  const drawTimeline = () => {
    replace(meters, ...meterRows(entries));
    replace(changes, ...changeRows(id, entries));
    void drawPatch();
    const list = toolSteps(entries);
    replace(
      steps,
      ...(list.length === 0 ? [h('li', { class: 'muted', text: 'No tool call yet.' })] : list.map(stepItem)),
    );
  };
  /** The end checkpoint's patch, fetched once per checkpoint (tasks.diff), under the change set. */
  const drawPatch = async () => {
    const c = workspaceChanges(entries);
    if (!c?.checkpoint || c.lines.length === 0 || patchOf === c.checkpoint || !api.can('tasks.diff')) return;
    patchOf = c.checkpoint;
    await act(null, out, async () => {
      const d = await api.call<{ patch: string; truncated: boolean }>('tasks.diff', {
        checkpoint: c.checkpoint,
      });
      replace(
        patch,
        h('pre', { class: 'patch-text', 'aria-label': 'Patch', text: d.patch || '(no text changes)' }),
        ...(d.truncated
          ? [
              h('p', {
                class: 'muted',
                text: `The patch is longer than shown: cowork-vm diff ${c.checkpoint}`,
              }),
            ]
          : []),
      );
    });
  };
  const refreshSummary = () =>
    act(null, out, async () => drawSummary(await api.call<TaskSummary>('tasks.get', { id })));

  void refreshSummary();
  void act(null, out, async () => {
    const history = await api.call<TimelineEntry[]>('timeline.query', { taskId: id, limit: 1000 });
    for (const e of history) {
      if (seen.has(e.id)) continue;
      seen.add(e.id);
      entries.push(e);
    }
    entries = entries.sort((a, b) => a.id - b.id);
    drawTimeline();
  });
  drawTimeline();

  const offTimeline = live.on('timeline', (e) => {
    if (e.taskId !== id || seen.has(e.id)) return;
    seen.add(e.id);
    entries.push(e);
    drawTimeline();
    if (e.type.startsWith('task.')) void refreshSummary();
  });
  const offTask = live.on('task', (ev) => {
    if (ev.taskId !== id) return;
    if (ev.type === 'text') text.append(ev.text);
    else void refreshSummary();
  });
  return () => {
    offTimeline();
    offTask();
  };
}

/** The change set of the task's end checkpoint, with the commands that show the patch and undo it. */
function changeRows(id: string, entries: TimelineEntry[]): HTMLElement[] {
  const c = workspaceChanges(entries);
  if (!c) return [h('p', { class: 'muted', text: 'Shown when the task ends (its end checkpoint).' })];
  const rows: HTMLElement[] = [
    c.lines.length === 0
      ? h('p', { text: 'No changes to the workspace.' })
      : h('pre', { class: 'change-set', 'aria-label': 'Changed files', text: c.lines.join('\n') }),
  ];
  if (c.truncated)
    rows.push(h('p', { class: 'muted', text: 'More changes than shown: see cowork-vm diff.' }));
  if (c.skipped.length > 0)
    rows.push(h('p', { class: 'muted', text: `Not recorded (over the size cap): ${c.skipped.join(', ')}` }));
  rows.push(
    h(
      'p',
      { class: 'muted' },
      'Patch: ',
      h('code', { text: `cowork-vm diff ${id}` }),
      ' · take it back: ',
      h('code', { text: `cowork-vm undo ${id}` }),
    ),
  );
  return rows;
}

function meterRows(entries: TimelineEntry[]): HTMLElement[] {
  const list = budgetMeters(entries);
  if (list.length === 0) return [h('p', { class: 'muted', text: 'No model call yet.' })];
  return list.map((m, i) => {
    const mid = `meter-${i}`;
    return h(
      'div',
      { class: 'meter-row' },
      h('label', { for: mid, text: m.label }),
      m.max !== undefined
        ? h('meter', {
            id: mid,
            min: '0',
            max: String(m.max),
            value: String(Math.min(m.value, m.max)),
            high: String(m.max * 0.8),
          })
        : h('span', { id: mid, class: 'no-limit' }),
      h('span', { class: 'meter-text', text: m.text }),
    );
  });
}

function stepItem(s: ToolStep): HTMLElement {
  const decision = s.decision
    ? h('span', { class: `effect effect-${s.decision.effect}`, text: s.decision.effect })
    : h('span', { class: 'muted', text: 'no decision needed' });
  return h(
    'li',
    { class: 'step' },
    h('div', { class: 'step-head' }, h('strong', { text: s.name }), ' ', decision),
    s.input ? h('pre', { class: 'command', text: s.input }) : null,
    s.decision && s.decision.reasons.length > 0
      ? h('p', { class: 'muted', text: s.decision.reasons.join('; ') })
      : null,
    s.approval
      ? h('p', {
          text: `${verdictWords(s.approval.verdict)} by ${s.approval.by}${s.approval.message ? ` — “${s.approval.message}”` : ''}`,
        })
      : null,
    s.exec
      ? h('p', {
          text:
            s.exec.exitCode === null ? `killed by ${s.exec.signal ?? 'a signal'}` : `exit ${s.exec.exitCode}`,
        })
      : null,
    s.result
      ? h(
          'details',
          {},
          h('summary', { text: s.result.isError ? 'result (error)' : 'result' }),
          h('pre', { text: s.result.output }),
        )
      : h('p', { class: 'muted', text: 'running…' }),
  );
}
