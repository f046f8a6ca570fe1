import { h, notice, replace, table } from '../dom.js';
import { formatTime } from '../format.js';
import { act, type Page, type PageContext } from '../page.js';
import type { Device } from '../types.js';

const COLUMNS = ['Name', 'Id', 'Role', 'Channel', 'Paired', 'Last seen', ''];

/** Admin only (the page exists only with devices.list): paired devices, pairing codes, revoke. */
export const devicesPage: Page = (ctx, root) => {
  const out = h('div', { 'aria-live': 'polite' });
  const box = h('div');
  root.append(h('h1', { text: 'Devices' }));
  if (ctx.api.can('pair.create')) root.append(pairForm(ctx));
  root.append(h('section', { class: 'card' }, h('h2', { text: 'Paired devices' }), out, box));

  const refresh = () =>
    act(null, out, async () => {
      const devices = await ctx.api.call<Device[]>('devices.list');
      replace(
        box,
        devices.length === 0
          ? h('p', { class: 'muted', text: 'No device is paired.' })
          : table(
              COLUMNS,
              devices.map((d) => [
                d.name,
                h('span', { class: 'mono', text: d.id }),
                d.role,
                d.channelUser ? `${d.channel} (${d.channelUser})` : d.channel,
                new Date(d.createdAt).toLocaleDateString(),
                d.lastSeenAt
                  ? `${new Date(d.lastSeenAt).toLocaleDateString()} ${formatTime(d.lastSeenAt)}`
                  : '—',
                d.revokedAt
                  ? `revoked${d.revokedBy ? ` by ${d.revokedBy}` : ''}`
                  : revokeButton(ctx, d, out, refresh),
              ]),
            ),
      );
    });
  void refresh();
  return ctx.live.on('timeline', (e) => {
    if (e.type === 'control.paired' || e.type === 'control.device_revoked') void refresh();
  });
};

function revokeButton(ctx: PageContext, d: Device, out: HTMLElement, refresh: () => Promise<void>): Node {
  if (!ctx.api.can('devices.revoke')) return document.createTextNode('');
  const own = d.id === ctx.session.deviceId;
  const b = h('button', {
    type: 'button',
    class: 'danger',
    text: own ? 'Revoke (this session)' : 'Revoke',
    'aria-label': `Revoke ${d.name}`,
  });
  let armed = false;
  b.addEventListener('click', () => {
    if (!armed) {
      armed = true;
      b.textContent = `Confirm revoking ${d.name}`;
      return;
    }
    void act(b, out, async () => {
      await ctx.api.call('devices.revoke', { id: d.id });
      await refresh();
      out.append(notice('ok', `Revoked ${d.name}.`));
    });
  });
  return b;
}

function pairForm(ctx: PageContext): HTMLElement {
  const out = h('div', { 'aria-live': 'polite' });
  const role = h(
    'select',
    { id: 'pair-role' },
    h('option', { value: 'viewer', text: 'viewer — read only' }),
    h('option', { value: 'operator', text: 'operator — tasks and approvals' }),
    h('option', { value: 'admin', text: 'admin — everything' }),
  );
  const submit = h('button', { type: 'submit', class: 'primary', text: 'Create pairing code' });
  const form = h(
    'form',
    { class: 'card', 'aria-label': 'Pair a device' },
    h('h2', { text: 'Pair a device' }),
    h('div', { class: 'field' }, h('label', { for: 'pair-role', text: 'Role' }), role),
    submit,
    out,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void act(submit, out, async () => {
      const r = await ctx.api.call<{ code: string; expiresAt: number }>('pair.create', { role: role.value });
      out.replaceChildren(
        h(
          'div',
          { class: 'pair-code', role: 'status' },
          h('p', {}, 'Code: ', h('code', { class: 'code', text: r.code })),
          h('p', {
            class: 'muted',
            text: `One use, as ${role.value}; expires at ${formatTime(r.expiresAt)}.`,
          }),
        ),
      );
    });
  });
  return form;
}
