import { field, h, replace } from '../dom.js';
import { formatTime, verdictWords } from '../format.js';
import type { Answer } from '../live.js';
import { act, type Page, type PageContext } from '../page.js';
import { href } from '../routes.js';
import type { PendingApproval, VerdictKind } from '../types.js';

/**
 * Pending approvals, one card each, kept by id: a card is never redrawn while pending (a deny
 * message being typed survives updates). When an approval leaves the pending list — answered
 * here, in the terminal, by the CLI or another device, or timed out — its card stays and says
 * who answered, from the timeline's approval.answered `by`.
 */
export const approvalsPage: Page = (ctx, root) => {
  const { live } = ctx;
  const list = h('div', { class: 'approvals' });
  const empty = h('p', { class: 'muted', text: 'Nothing is waiting for an answer.' });
  root.append(h('h1', { text: 'Approvals' }), empty, list);
  const cards = new Map<
    string,
    { el: HTMLElement; status: HTMLElement; controls?: HTMLElement; done: boolean }
  >();

  const markAnswered = (id: string) => {
    const card = cards.get(id);
    if (!card) return;
    const answer = live.answers.get(id);
    card.done = true;
    card.controls?.remove();
    card.el.classList.add('answered');
    replace(card.status, answeredText(answer));
  };
  const sync = (pending: PendingApproval[]) => {
    const ids = new Set(pending.map((a) => a.id));
    for (const a of pending) {
      if (cards.has(a.id)) continue;
      const card = approvalCard(ctx, a);
      cards.set(a.id, card);
      list.prepend(card.el);
    }
    for (const [id, card] of cards) if (!ids.has(id) && !card.done) markAnswered(id);
    empty.hidden = cards.size > 0;
  };

  sync(live.approvals);
  const offApprovals = live.on('approvals', sync);
  const offTimeline = live.on('timeline', (e) => {
    const id = typeof e.data.id === 'string' ? e.data.id : undefined;
    if ((e.type === 'approval.answered' || e.type === 'approval.timedout') && id && cards.has(id))
      markAnswered(id);
  });
  return () => {
    offApprovals();
    offTimeline();
  };
};

function answeredText(answer: Answer | undefined): string {
  if (!answer) return 'answered';
  if (answer.by === 'timeout') return 'timed out (denied)';
  return `answered by ${answer.by}: ${verdictWords(answer.verdict)}${answer.message ? ` — “${answer.message}”` : ''}`;
}

function approvalCard(ctx: PageContext, a: PendingApproval) {
  const status = h('p', {
    class: 'status',
    role: 'status',
    text: `waiting — expires at ${formatTime(a.expiresAt)}`,
  });
  const what =
    a.command !== undefined
      ? h('pre', { class: 'command', text: a.command })
      : h('pre', {
          class: 'command',
          text: a.input === undefined ? '(no input)' : JSON.stringify(a.input, null, 2),
        });
  const el = h(
    'article',
    { class: 'card approval', 'data-approval': a.id, 'aria-label': `approval ${a.id}` },
    h(
      'h2',
      {},
      h('span', { class: 'tool', text: a.tool }),
      ' ',
      h('span', { class: `risk risk-${a.risk}`, text: a.risk }),
    ),
    what,
    h(
      'dl',
      { class: 'facts' },
      ...field('Working folder', a.cwd ?? '—', 'mono'),
      ...field('Context', a.context),
      ...field('Task', a.taskId ? h('a', { href: href('tasks', a.taskId), text: a.taskId }) : '—'),
      ...field('Id', a.id, 'mono'),
    ),
    a.reasons.length > 0
      ? h('ul', { class: 'reasons' }, ...a.reasons.map((r) => h('li', { text: r })))
      : null,
    status,
  );
  const controls = ctx.api.can('approvals.answer') ? answerControls(ctx, a) : undefined;
  if (controls) el.append(controls);
  return { el, status, controls, done: false };
}

/** The buttons exist only for a session that may call approvals.answer. */
function answerControls(ctx: PageContext, a: PendingApproval): HTMLElement {
  const out = h('div', { 'aria-live': 'polite' });
  const msgId = `deny-msg-${a.id}`;
  const message = h('input', { id: msgId, type: 'text', maxlength: '2000', autocomplete: 'off' });
  const answer = (button: HTMLButtonElement, kind: VerdictKind, withMessage = false) =>
    act(button, out, async () => {
      const text = message.value.trim();
      if (withMessage && text === '') throw new Error('Write the message for the agent first.');
      await ctx.api.call('approvals.answer', { id: a.id, kind, ...(withMessage ? { message: text } : {}) });
    });
  const button = (label: string, cls: string, kind: VerdictKind, withMessage = false) => {
    const b = h('button', { type: 'button', class: cls, text: label });
    b.addEventListener('click', () => answer(b, kind, withMessage));
    return b;
  };
  const form = h('form', { class: 'deny-message' });
  form.addEventListener('submit', (ev) => ev.preventDefault());
  form.append(
    h('label', { for: msgId, text: 'Message to the agent' }),
    message,
    button('Deny with message', 'danger', 'deny', true),
  );
  return h(
    'div',
    { class: 'answer' },
    h(
      'div',
      { class: 'buttons' },
      button('Approve once', 'primary', 'approve-once'),
      // For a call outside a task there is nothing to remember the approval in.
      a.taskId && a.command !== undefined ? button('Approve for the task', '', 'approve-task') : null,
      button('Deny', 'danger', 'deny'),
    ),
    form,
    out,
  );
}
