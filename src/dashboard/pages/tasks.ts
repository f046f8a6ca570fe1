import { h, notice, replace, table } from '../dom.js';
import { act, type Page, type PageContext } from '../page.js';
import { href } from '../routes.js';
import type { TaskSummary } from '../types.js';
import { taskView } from './task-view.js';

/** `#/tasks`: the list and, for operators and admins, the start form; `#/tasks/<id>`: one task. */
export const tasksPage: Page = (ctx, root) => {
  if (ctx.route.arg) return taskView(ctx, root, ctx.route.arg);
  const out = h('div', { 'aria-live': 'polite' });
  const listBox = h('div');
  root.append(h('h1', { text: 'Tasks' }));
  if (ctx.api.can('tasks.start')) root.append(startForm(ctx));
  root.append(h('section', { class: 'card' }, h('h2', { text: 'Recent tasks' }), out, listBox));

  const columns = ['Task', 'Status', 'Title', 'Origin', 'Started'];
  const refresh = () =>
    act(null, out, async () => {
      const tasks = await ctx.api.call<TaskSummary[]>('tasks.list', { limit: 100 });
      replace(
        listBox,
        tasks.length === 0
          ? h('p', { class: 'muted', text: 'No task has run in this sandbox yet.' })
          : table(
              columns,
              tasks.map((t) => [
                h('a', { href: href('tasks', t.id), text: t.id }),
                h('span', { class: `state state-${t.status}`, text: t.outcome ?? t.status }),
                t.title,
                t.origin,
                new Date(t.createdAt).toLocaleString(),
              ]),
            ),
      );
    });
  void refresh();
  return ctx.live.on('timeline', (e) => {
    if (e.type === 'task.started' || e.type === 'task.finished' || e.type === 'task.cancelled')
      void refresh();
  });
};

function numberField(id: string, label: string, step: string): [HTMLElement, HTMLInputElement] {
  const input = h('input', { id, type: 'number', min: '0', step, inputmode: 'decimal' });
  return [h('div', { class: 'field' }, h('label', { for: id, text: label }), input), input];
}

function startForm(ctx: PageContext): HTMLElement {
  const out = h('div', { 'aria-live': 'polite' });
  const prompt = h('textarea', { id: 'task-prompt', rows: '3', required: true, maxlength: '100000' });
  const model = h('input', {
    id: 'task-model',
    type: 'text',
    autocomplete: 'off',
    placeholder: 'configured default',
  });
  const [tokensBox, tokens] = numberField('task-max-tokens', 'Max tokens', '1');
  const [costBox, cost] = numberField('task-max-cost', 'Max cost (USD)', '0.01');
  const [itersBox, iters] = numberField('task-max-iterations', 'Max iterations', '1');
  const submit = h('button', { type: 'submit', class: 'primary', text: 'Start task' });
  const form = h(
    'form',
    { class: 'card start-task', 'aria-label': 'Start a task' },
    h('h2', { text: 'Start a task' }),
    h('div', { class: 'field' }, h('label', { for: 'task-prompt', text: 'Prompt' }), prompt),
    h('div', { class: 'field' }, h('label', { for: 'task-model', text: 'Model (optional)' }), model),
    h(
      'fieldset',
      { class: 'limits' },
      h('legend', { text: 'Limits (optional; they only tighten the configured budgets)' }),
      tokensBox,
      costBox,
      itersBox,
    ),
    submit,
    out,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void act(submit, out, async () => {
      const limits: Record<string, number> = {};
      const put = (key: string, input: HTMLInputElement, integer: boolean) => {
        if (input.value.trim() === '') return;
        const v = Number(input.value);
        if (!Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
          throw new Error(
            `${key} must be a positive ${integer ? 'whole number' : 'number'}, not "${input.value}"`,
          );
        }
        limits[key] = v;
      };
      put('maxTokens', tokens, true);
      put('maxCostUsd', cost, false);
      put('maxIterations', iters, true);
      if (prompt.value.trim() === '') throw new Error('Write a prompt for the task.');
      const r = await ctx.api.call<{ id: string }>('tasks.start', {
        prompt: prompt.value,
        ...(model.value.trim() ? { model: model.value.trim() } : {}),
        ...(Object.keys(limits).length > 0 ? { limits } : {}),
      });
      out.replaceChildren(notice('ok', `Started ${r.id}`));
      ctx.navigate(href('tasks', r.id));
    });
  });
  return form;
}
