import { describe, expect, it } from 'vitest';
import type { PendingApproval } from '../../src/host/approvals/types.js';
import { plain } from '../../src/host/dbus/index.js';
import { buildMenu } from '../../src/host/menu/build.js';
import { escapeMarkup, notificationBody } from '../../src/host/notify/index.js';
import { layoutOf, MenuIds, menuLabel, menuTree } from '../../src/host/tray/index.js';

const P: PendingApproval = {
  id: 'a7k2',
  tool: 'shell',
  command: 'rm -rf my_build',
  cwd: '/workspace',
  risk: 'destructive',
  context: 'agent',
  reasons: ['asks'],
  createdAt: 0,
  expiresAt: 1,
};
const STATUS = {
  workspace: '/w/app',
  state: 'running' as const,
  vm: { driver: 'qemu', accel: 'tcg', share: '9p', image: 'base', cpus: 1, memoryMiB: 512 },
  tasks: { running: 0 },
};

/** The wire layout as plain data: { id, props, children }. */
function readable(layout: unknown[]): unknown {
  const [id, props, children] = layout as [number, [string, [string, unknown]][], [string, unknown[]][]];
  return {
    id,
    props: Object.fromEntries(props.map(([k, [, v]]) => [k, v])),
    children: children.map(([sig, l]) => {
      expect(sig).toBe('(ia{sv}av)');
      return readable(l);
    }),
  };
}

describe('the model as a dbusmenu layout', () => {
  it('labels, separators, submenus and actions with their dbusmenu properties', () => {
    const model = buildMenu({
      status: STATUS,
      pending: [P],
      recentWorkspaces: [],
      role: 'admin',
      dashboard: false,
    });
    const tree = menuTree(model, new MenuIds());
    const root = readable(layoutOf(tree, -1, [])) as {
      props: object;
      children: { props: Record<string, unknown>; children: unknown[] }[];
    };
    expect(root.props).toEqual({ 'children-display': 'submenu' });
    expect(root.children.map((c) => c.props)).toEqual([
      { label: 'Waiting (1 pending) · app', enabled: false },
      { type: 'separator' },
      { label: 'shell: rm -rf my__build', 'children-display': 'submenu' },
      { type: 'separator' },
      { label: 'Stop sandbox', enabled: true },
      { type: 'separator' },
      { label: 'Quit', enabled: true },
    ]);
    const sub = root.children[2] as { children: { props: Record<string, unknown> }[] };
    expect(sub.children.map((c) => c.props.label ?? c.props.type)).toEqual([
      'Command: rm -rf my__build',
      'Folder: /workspace',
      'Risk: destructive · context: agent · tool: shell',
      'Why: asks',
      'separator',
      'Approve',
      'Deny',
    ]);
  });

  it('depth and property filters, and ids that stay with their entry across layouts', () => {
    const ids = new MenuIds();
    const waiting = menuTree(
      buildMenu({ status: STATUS, pending: [P], recentWorkspaces: [], role: 'admin', dashboard: false }),
      ids,
    );
    const shallow = readable(layoutOf(waiting, 1, ['label'])) as {
      children: { props: object; children: unknown[] }[];
    };
    expect(shallow.children[2]).toEqual({
      id: expect.any(Number),
      props: { label: 'shell: rm -rf my__build' },
      children: [],
    });
    const quitBefore = waiting.children.at(-1)?.id;
    const running = menuTree(
      buildMenu({ status: STATUS, pending: [], recentWorkspaces: [], role: 'admin', dashboard: false }),
      ids,
    );
    expect(running.children.at(-1)?.id).toBe(quitBefore);
    expect(running.children.some((c) => c.id === waiting.children[2]?.id)).toBe(false);
  });

  it('underscores are doubled so they are not access keys', () => {
    expect(menuLabel('a_b__c')).toBe('a__b____c');
  });

  it('plain() reads nested variants and dictionaries back', () => {
    const incoming = [[['urgency', [[{ type: 'y', child: [] }], [2]]]]];
    expect(plain(incoming[0])).toEqual({ urgency: 2 });
  });
});

describe('notification text', () => {
  it('the body names the command, folder, reasons and approval, with control characters shown', () => {
    expect(notificationBody({ ...P, command: 'ls\u001b[2J', reasons: ['one', 'two'] })).toBe(
      'ls\\x1b[2J\nin /workspace\nwhy: one; two\nrisk: destructive · approval a7k2',
    );
    expect(notificationBody({ ...P, command: 'x'.repeat(5000) })).toHaveLength(1000);
    expect(escapeMarkup('<a href="x">&</a>')).toBe('&lt;a href="x"&gt;&amp;&lt;/a&gt;');
  });
});
