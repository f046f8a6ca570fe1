import { field, h, replace } from '../dom.js';
import { act, type Page } from '../page.js';

/** policy.check: what the policy engine would decide for a command, and why. Nothing runs. */
export const policyPage: Page = (ctx, root) => {
  const out = h('div', { 'aria-live': 'polite' });
  const command = h('textarea', { id: 'pc-command', rows: '2', required: true, spellcheck: 'false' });
  const cwd = h('input', { id: 'pc-cwd', type: 'text', placeholder: '/workspace', autocomplete: 'off' });
  const submit = h('button', { type: 'submit', class: 'primary', text: 'Check' });
  const form = h(
    'form',
    { class: 'card', 'aria-label': 'Check a command against the policy' },
    h('div', { class: 'field' }, h('label', { for: 'pc-command', text: 'Command' }), command),
    h('div', { class: 'field' }, h('label', { for: 'pc-cwd', text: 'Working folder (optional)' }), cwd),
    submit,
  );
  root.append(
    h('h1', { text: 'Policy check' }),
    h('p', {
      class: 'muted',
      // The contract lets a caller ask only for a stricter context than its own, and a dashboard
      // session is already in the strictest (gateway): there is nothing to choose.
      text: 'What the policy would decide for a shell command sent from here (the gateway context). Nothing is run, nobody is asked.',
    }),
    form,
    out,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void act(submit, out, async () => {
      if (command.value.trim() === '') throw new Error('Write the command to check.');
      const r = await ctx.api.call<Record<string, unknown>>('policy.check', {
        command: command.value,
        ...(cwd.value.trim() ? { cwd: cwd.value.trim() } : {}),
      });
      replace(out, verdictCard(r));
    });
  });
  return () => undefined;
};

function verdictCard(r: Record<string, unknown>): HTMLElement {
  const verdict = String(r.verdict ?? '?');
  const reasons = Array.isArray(r.reasons) ? r.reasons.map(String) : [];
  const extra = Object.entries(r).filter(
    ([k, v]) => !['verdict', 'reasons'].includes(k) && v !== undefined && v !== null,
  );
  return h(
    'section',
    { class: `card verdict verdict-${verdict}`, 'aria-label': 'Verdict' },
    h('h2', {}, 'Verdict: ', h('span', { class: `effect effect-${verdict}`, text: verdict })),
    reasons.length > 0 ? h('ul', { class: 'reasons' }, ...reasons.map((x) => h('li', { text: x }))) : null,
    extra.length > 0
      ? h(
          'dl',
          { class: 'facts' },
          ...extra.flatMap(([k, v]) => field(k, typeof v === 'string' ? v : JSON.stringify(v))),
        )
      : null,
  );
}
