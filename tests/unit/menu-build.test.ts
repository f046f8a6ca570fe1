import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CALLS } from '../../src/host/api/bindings.js';
import type { ControllerApi, StatusInfo } from '../../src/host/api/controller.js';
import type { Role } from '../../src/host/api/roles.js';
import type { PendingApproval } from '../../src/host/approvals/types.js';
import { buildMenu, type MenuInput, shortSubject } from '../../src/host/menu/build.js';
import { type MenuItem, menuModelSchema } from '../../src/host/menu/model.js';
import { hostPaths, sandboxStateDir } from '../../src/host/paths.js';
import { recentWorkspaces, recordWorkspaceStart } from '../../src/host/sandbox/recent.js';

const STATUS: MenuInput['status'] = {
  workspace: '/home/u/src/app',
  state: 'running',
  vm: { driver: 'qemu', accel: 'tcg', share: '9p', image: 'base', cpus: 2, memoryMiB: 1024 },
  tasks: { running: 1 },
};

function approval(over: Partial<PendingApproval> = {}): PendingApproval {
  return {
    id: 'a7k2',
    taskId: 't-12',
    tool: 'shell',
    command: 'rm -rf build',
    cwd: '/workspace',
    risk: 'destructive',
    context: 'agent',
    reasons: ['rm is not covered by an allow rule'],
    createdAt: 1_000,
    expiresAt: 301_000,
    ...over,
  };
}

function build(over: Partial<MenuInput>) {
  const model = buildMenu({
    status: STATUS,
    pending: [],
    recentWorkspaces: [],
    role: 'admin',
    dashboard: true,
    ...over,
  });
  expect(menuModelSchema.safeParse(model).success).toBe(true);
  return model;
}

/** Every action of the model, flattened, as "id kind". */
function actions(items: MenuItem[]): string[] {
  return items.flatMap((i) =>
    i.type === 'action' ? [`${i.id} ${i.action.kind}`] : i.type === 'submenu' ? actions(i.items) : [],
  );
}

function labels(items: MenuItem[]): string[] {
  return items.flatMap((i) =>
    i.type === 'label' || i.type === 'action'
      ? [i.label]
      : i.type === 'submenu'
        ? [i.label, ...labels(i.items)]
        : [],
  );
}

describe('buildMenu: states', () => {
  it('stopped (no controller): status line, recent workspaces to start, quit', () => {
    const m = build({ status: null, recentWorkspaces: ['/home/u/a', '/home/u/b'], pending: [approval()] });
    expect(m.status).toEqual({
      state: 'stopped',
      pendingApprovals: 0,
      title: 'cowork-vm',
      tooltip: 'No sandbox is running',
    });
    expect(m.items[0]).toEqual({ type: 'label', id: 'status', label: 'Stopped' });
    expect(actions(m.items)).toEqual([
      'dashboard open-dashboard',
      'start:/home/u/a start-workspace',
      'start:/home/u/b start-workspace',
      'quit quit',
    ]);
    const dash = m.items.find((i) => i.type === 'action' && i.id === 'dashboard');
    expect(dash).toMatchObject({ enabled: false });
    expect(labels(m.items)).toContain('Start a (/home/u/a)');
  });

  it('stopped: at most 5 workspaces, in the order given (newest first)', () => {
    const ws = Array.from({ length: 8 }, (_, i) => `/w/${i}`);
    const m = build({ status: null, recentWorkspaces: ws });
    expect(actions(m.items).filter((a) => a.startsWith('start:'))).toEqual(
      ws.slice(0, 5).map((w) => `start:${w} start-workspace`),
    );
  });

  it('running: status line names the workspace, stop is offered, no start entries', () => {
    const m = build({ recentWorkspaces: ['/home/u/a'] });
    expect(m.status).toMatchObject({
      state: 'running',
      pendingApprovals: 0,
      title: 'cowork-vm',
      workspace: '/home/u/src/app',
    });
    expect(m.status.tooltip).toContain('/home/u/src/app');
    expect(m.status.tooltip).toContain('1 task(s) running');
    expect(m.items[0]).toMatchObject({ label: 'Running · app' });
    expect(actions(m.items)).toEqual(['dashboard open-dashboard', 'stop stop', 'quit quit']);
  });

  it('waiting: N pending, one submenu per approval with details and Approve/Deny', () => {
    const m = build({
      pending: [approval(), approval({ id: 'b3x9', command: 'curl x | sh', taskId: undefined })],
    });
    expect(m.status).toMatchObject({ state: 'waiting', pendingApprovals: 2, title: 'cowork-vm · 2 waiting' });
    expect(m.items[0]).toMatchObject({ label: 'Waiting (2 pending) · app' });
    const sub = m.items.find((i) => i.type === 'submenu' && i.id === 'approval:a7k2');
    if (sub?.type !== 'submenu') throw new Error('no submenu for a7k2');
    expect(sub.label).toBe('shell: rm -rf build — task t-12');
    expect(labels(sub.items)).toEqual([
      'Command: rm -rf build',
      'Folder: /workspace',
      'Risk: destructive · context: agent · tool: shell',
      'Task: t-12',
      'Why: rm is not covered by an allow rule',
      'Approve',
      'Deny',
    ]);
    expect(actions(m.items)).toEqual([
      'approval:a7k2:approve approve',
      'approval:a7k2:deny deny',
      'approval:b3x9:approve approve',
      'approval:b3x9:deny deny',
      'dashboard open-dashboard',
      'stop stop',
      'quit quit',
    ]);
    const approve = sub.items.find((i) => i.type === 'action' && i.action.kind === 'approve');
    expect(approve).toMatchObject({ action: { kind: 'approve', approvalId: 'a7k2' }, enabled: true });
  });

  it('stopping: stop is shown disabled; crashed counts as stopped', () => {
    const stopping = build({ status: { ...STATUS!, state: 'stopping' } });
    expect(stopping.status.state).toBe('running');
    expect(stopping.items[0]).toMatchObject({ label: 'Stopping · app' });
    expect(stopping.items.find((i) => i.type === 'action' && i.id === 'stop')).toMatchObject({
      enabled: false,
    });
    const crashed = build({ status: { ...STATUS!, state: 'crashed' } });
    expect(crashed.status.state).toBe('stopped');
  });

  it('no dashboard: the entry is left out', () => {
    expect(actions(build({ dashboard: false }).items)).toEqual(['stop stop', 'quit quit']);
  });
});

describe('buildMenu: roles', () => {
  const cases: [Role, string[]][] = [
    ['viewer', ['dashboard open-dashboard', 'quit quit']],
    [
      'operator',
      ['approval:a7k2:approve approve', 'approval:a7k2:deny deny', 'dashboard open-dashboard', 'quit quit'],
    ],
    [
      'admin',
      [
        'approval:a7k2:approve approve',
        'approval:a7k2:deny deny',
        'dashboard open-dashboard',
        'stop stop',
        'quit quit',
      ],
    ],
  ];
  for (const [role, expected] of cases) {
    it(`${role}: only the actions its role may call`, () => {
      const m = build({ role, pending: [approval()] });
      expect(actions(m.items)).toEqual(expected);
      // A viewer still sees what waits, just cannot answer it.
      expect(labels(m.items)).toContain('Command: rm -rf build');
    });
  }

  it('only an admin is offered workspaces to start', () => {
    for (const role of ['viewer', 'operator'] as const) {
      expect(actions(build({ role, status: null, recentWorkspaces: ['/w/a'] }).items)).toEqual([
        'dashboard open-dashboard',
        'quit quit',
      ]);
    }
  });
});

describe('buildMenu: what the agent wrote stays visible as text', () => {
  it('shortens a long command in the title and keeps all of it in wrapped detail lines', () => {
    const long = `echo ${'x'.repeat(200)}`;
    const m = build({ pending: [approval({ command: long })] });
    const sub = m.items.find((i) => i.type === 'submenu');
    if (sub?.type !== 'submenu') throw new Error('no submenu');
    expect(sub.label).toBe(`shell: echo ${'x'.repeat(42)}… — task t-12`);
    const detail = labels(sub.items).filter((l) => l.startsWith('Command: ') || l.startsWith('  '));
    expect(detail.join('').replace('Command: ', '').replace(/ {2}/g, '')).toBe(long);
    expect(detail.every((l) => l.length <= 89)).toBe(true);
  });

  it('caps a huge command at 40 lines and says how much is left out', () => {
    const huge = 'y'.repeat(10_000);
    const sub = build({ pending: [approval({ command: huge })] }).items.find((i) => i.type === 'submenu');
    if (sub?.type !== 'submenu') throw new Error('no submenu');
    const cmd = sub.items.filter((i) => i.type === 'label' && i.id.includes(':command:'));
    expect(cmd).toHaveLength(40);
    expect(labels(cmd).at(-1)).toBe(`  … ${10_000 - 39 * 80} more characters (see \`cowork-vm approvals\`)`);
  });

  it('control characters and newlines are shown escaped, never raw', () => {
    const sneaky = 'ls\n\u001b[2Krm -rf ~\r';
    const m = build({ pending: [approval({ command: sneaky, reasons: ['a\u0007b'] })] });
    for (const l of labels(m.items)) expect(l).not.toMatch(/[\u0000-\u001f]/);
    expect(labels(m.items)).toContain('Command: ls\\n\\x1b[2Krm -rf ~\\r');
    expect(shortSubject(approval({ command: 'a\n\nb' }))).toBe('shell: a b — task t-12');
  });

  it('a tool call without a command shows its input', () => {
    const m = build({
      pending: [
        approval({ tool: 'write_file', command: undefined, cwd: undefined, input: { path: 'a.txt' } }),
      ],
    });
    const sub = m.items.find((i) => i.type === 'submenu');
    if (sub?.type !== 'submenu') throw new Error('no submenu');
    expect(sub.label).toBe('write_file: {"path":"a.txt"} — task t-12');
    expect(labels(sub.items)[0]).toBe('Input: {"path":"a.txt"}');
  });
});

describe('menu.get binding', () => {
  const api = {
    status: async () => ({ ...STATUS, pid: 1, pendingApprovals: 1 }) as StatusInfo,
    approvalsList: () => [approval()],
  } as unknown as ControllerApi;
  const call = (role: Role | undefined, dashboard?: boolean) =>
    CALLS['menu.get'](dashboard === undefined ? {} : { dashboard }, {
      api,
      origin: { id: 'x', context: 'gateway' },
      signal: new AbortController().signal,
      role,
    });

  it("builds the model for the transport's role; no role is a viewer", async () => {
    expect(actions((await call('operator')).items)).toContain('approval:a7k2:approve approve');
    expect(actions((await call(undefined)).items)).toEqual(['quit quit']);
    expect(actions((await call('admin', true)).items)).toContain('dashboard open-dashboard');
  });
});

describe('recent workspaces', () => {
  const root = mkdtempSync(join(tmpdir(), 'menu-recent-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const paths = hostPaths({ COWORK_VM_STATE_DIR: join(root, 'state'), HOME: root });

  function started(name: string, at: string, exists = true): string {
    const ws = join(root, name);
    if (exists) mkdirSync(ws, { recursive: true });
    const dir = sandboxStateDir(paths, ws);
    mkdirSync(dir, { recursive: true });
    recordWorkspaceStart(dir, ws, new Date(at));
    return ws;
  }

  it('newest first, at most the limit, only folders that still exist, only records in their own folder', () => {
    const a = started('a', '2026-12-01T10:00:00Z');
    const b = started('b', '2026-12-02T10:00:00Z');
    started('gone', '2026-12-03T10:00:00Z', false);
    const c = started('c', '2026-12-01T12:00:00Z');
    // A record copied into another sandbox's folder is not believed there.
    const foreign = join(paths.stateDir, 'sandboxes', '0123456789abcdef');
    mkdirSync(foreign, { recursive: true });
    writeFileSync(
      join(foreign, 'workspace.json'),
      JSON.stringify({ workspace: a, lastStartedAt: '2027-01-01T00:00:00Z' }),
    );
    writeFileSync(join(paths.stateDir, 'sandboxes', 'junk'), 'not a folder');
    expect(recentWorkspaces(paths, 5)).toEqual([b, c, a]);
    expect(recentWorkspaces(paths, 2)).toEqual([b, c]);
  });

  it('no state dir yet: none', () => {
    expect(recentWorkspaces(hostPaths({ COWORK_VM_STATE_DIR: join(root, 'nope'), HOME: root }), 5)).toEqual(
      [],
    );
  });
});
