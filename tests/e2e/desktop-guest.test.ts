import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, BIN, type CliResult, cli, cliAsync } from '../helpers/cli.js';
import { type PrivateBus, startPrivateBus } from '../helpers/dbus.js';
import {
  type NotificationServer,
  startNotificationServer,
  startWatcher,
  type Watcher,
} from '../helpers/desktop-bus.js';
import { makeTestEnv, type TestSandboxEnv } from '../helpers/sandbox.js';
import { waitFor } from '../helpers/wait.js';

/*
 * The desktop frontends end to end, on one private session bus and one real guest: desktop
 * notifications raised by the controller (a notification server implemented by the test) and
 * `cowork-vm tray` as a child process (a StatusNotifierWatcher implemented by the test). Both
 * answer real approvals of real commands, which then run (or not) in the guest.
 */

const SNI = 'org.kde.StatusNotifierItem';
const MENU = 'com.canonical.dbusmenu';

interface Layout {
  id: number;
  props: Record<string, unknown>;
  children: Layout[];
}

/** GetLayout's wire form, as the test bus library decodes it, made readable. */
function readLayout(raw: unknown): Layout {
  const [id, props, children] = raw as [number, [string, [unknown, unknown[]]][], [unknown, unknown[]][]];
  return {
    id,
    props: Object.fromEntries(props.map(([k, [, [v]]]) => [k, v])),
    children: children.map(([, [inner]]) => readLayout(inner)),
  };
}

function findItem(l: Layout, pred: (l: Layout) => boolean): Layout | undefined {
  if (pred(l)) return l;
  for (const c of l.children) {
    const hit = findItem(c, pred);
    if (hit) return hit;
  }
  return undefined;
}

describe('desktop notifications and the tray (private session bus, real guest)', () => {
  let bus: PrivateBus;
  let server: NotificationServer;
  let watcher: Watcher;
  let t: TestSandboxEnv;
  let env: NodeJS.ProcessEnv;
  let ws: string;
  let tray: ChildProcess;
  let trayLog = '';
  let service = '';

  const status = () => watcher.property(service, '/StatusNotifierItem', SNI, 'Status');
  const layout = async () => {
    const [, raw] = await watcher.call(service, '/MenuBar', MENU, 'GetLayout', 'iias', [0, -1, []]);
    return readLayout(raw);
  };
  const waitStatus = (want: string, timeoutMs = 30_000) =>
    waitFor(async () => (await status()) === want, `tray Status ${want}`, {
      timeoutMs,
      intervalMs: 100,
      detail: () => `\ntray log:\n${trayLog}`,
    });
  /** The notification of the command that touches exactly this file. */
  const notificationFor = (file: string) =>
    server.notified.find((x) => x.body.startsWith(`touch /workspace/${file}\n`));
  const asked = (file: string): Promise<CliResult> =>
    cliAsync(['exec', '--context', 'agent', '--workspace', ws, '--', `touch /workspace/${file}`], env);

  beforeAll(async () => {
    assertBuilt();
    bus = await startPrivateBus();
    server = await startNotificationServer(bus.address);
    watcher = await startWatcher(bus.address);
    t = makeTestEnv('desk');
    ws = t.workspace;
    env = { ...t.env, DBUS_SESSION_BUS_ADDRESS: bus.address };
    tray = spawn(process.execPath, [BIN, 'tray', '--workspace', ws], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    tray.stderr?.on('data', (d) => (trayLog += d));
  });
  afterAll(async () => {
    tray?.kill('SIGTERM');
    if (t) cli(['stop', '--workspace', ws], env);
    server?.stop();
    watcher?.stop();
    await bus?.stop();
    t?.cleanup();
  });

  it('the tray registers with the watcher; with no controller it is Passive and offers to start the workspace', async () => {
    const reg = await waitFor(() => watcher.registered[0], 'RegisterStatusNotifierItem', {
      timeoutMs: 30_000,
      stopIf: () => tray.exitCode !== null && `the tray exited: ${trayLog}`,
    });
    service = reg.service;
    expect(service).toMatch(/^org\.kde\.StatusNotifierItem-\d+-1$/);
    expect(await status()).toBe('Passive');
    expect(await watcher.property(service, '/StatusNotifierItem', SNI, 'Menu')).toBe('/MenuBar');
    expect(await watcher.property(service, '/StatusNotifierItem', SNI, 'ItemIsMenu')).toBe(true);
    expect(await watcher.property(service, '/MenuBar', MENU, 'Version')).toBe(3);
    const labels = (await layout()).children.map((c) => c.props.label);
    expect(labels).toContain('Stopped');
    expect(labels).toContain(`Start ws (${ws})`);
  });

  it('a watcher that restarts gets the item registered again', async () => {
    const before = watcher.registered.length;
    watcher.stop();
    watcher = await startWatcher(bus.address);
    await waitFor(() => watcher.registered.length > 0, 'registration with the new watcher');
    expect(watcher.registered[0]?.service).toBe(service);
    expect(before).toBe(1);
  });

  it('the tray notices the controller that starts: Active', async () => {
    // Async: the test's own bus peers (server, watcher) must keep answering while it boots.
    const r = await cliAsync(['start', '--detach', '--workspace', ws], env);
    expect(r.code, r.stderr).toBe(0);
    await waitStatus('Active');
    expect(await watcher.property(service, '/StatusNotifierItem', SNI, 'Title')).toBe('cowork-vm');
  });

  it('an asked command raises a notification with Approve/Deny; approve runs it in the guest', async () => {
    const pending = asked('by-notification.txt');
    const n = await waitFor(() => notificationFor('by-notification.txt'), 'Notify');
    expect(n.appName).toBe('cowork-vm');
    expect(n.actions).toEqual(['approve', 'Approve', 'deny', 'Deny']);
    expect(n.hints.urgency).toBe(2);
    expect(n.expireTimeout).toBeGreaterThan(0);
    expect(existsSync(join(ws, 'by-notification.txt'))).toBe(false);
    server.invoke(n.id, 'approve');
    const r = await pending;
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(ws, 'by-notification.txt'))).toBe(true);
  });

  it('deny from the notification denies it; one answered from the CLI closes its notification', async () => {
    const denied = asked('denied-by-notification.txt');
    const n = await waitFor(() => notificationFor('denied-by-notification.txt'), 'Notify');
    server.invoke(n.id, 'deny');
    const r = await denied;
    expect(r.code).toBe(126);
    expect(r.stderr).toContain('denied by notification');
    expect(existsSync(join(ws, 'denied-by-notification.txt'))).toBe(false);

    const viaCli = asked('approved-by-cli.txt');
    const m = await waitFor(() => notificationFor('approved-by-cli.txt'), 'Notify');
    const id = /approval (\S+)$/.exec(m.body)?.[1];
    expect(id).toBeDefined();
    const ok = await cliAsync(['approve', id!, '--workspace', ws], env);
    expect(ok.code, ok.stderr).toBe(0);
    expect((await viaCli).code).toBe(0);
    await waitFor(
      () => server.closed.includes(m.id),
      'CloseNotification for the approval answered from the CLI',
    );
  });

  it('the tray shows a pending approval (NeedsAttention, listed in the menu); its Approve runs the command', async () => {
    const signalsBefore = watcher.signals.length;
    const pending = asked('by-tray.txt');
    await waitStatus('NeedsAttention');
    expect(
      watcher.signals
        .slice(signalsBefore)
        .some((s) => s.member === 'NewStatus' && s.body?.[0] === 'NeedsAttention'),
    ).toBe(true);
    const menu = await layout();
    const sub = findItem(
      menu,
      (l) => String(l.props.label ?? '').includes('by-tray.txt') && l.children.length > 0,
    );
    if (!sub) throw new Error(`the menu does not list the approval: ${JSON.stringify(menu)}`);
    expect(sub.props.label).toBe('shell: touch /workspace/by-tray.txt');
    expect(sub.children.map((c) => c.props.label ?? c.props.type)).toContain(
      'Command: touch /workspace/by-tray.txt',
    );
    const approve = findItem(sub, (l) => l.props.label === 'Approve');
    if (!approve) throw new Error('no Approve entry');
    expect(existsSync(join(ws, 'by-tray.txt'))).toBe(false);
    await watcher.call(service, '/MenuBar', MENU, 'Event', 'isvu', [approve.id, 'clicked', ['s', ''], 0]);
    const r = await pending;
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(ws, 'by-tray.txt'))).toBe(true);
    await waitStatus('Active');
    // Its notification was withdrawn too: answered elsewhere.
    const n = notificationFor('by-tray.txt');
    await waitFor(() => n && server.closed.includes(n.id), 'CloseNotification after the tray answered');
  });

  it('after stop the tray is Passive again; Quit ends it', async () => {
    const r = await cliAsync(['stop', '--workspace', ws], env);
    expect(r.code, r.stderr).toBe(0);
    await waitStatus('Passive');
    const quit = findItem(await layout(), (l) => l.props.label === 'Quit');
    if (!quit) throw new Error('no Quit entry');
    const exited = new Promise<number | null>((resolve) => tray.once('exit', (code) => resolve(code)));
    await watcher.call(service, '/MenuBar', MENU, 'Event', 'isvu', [quit.id, 'clicked', ['s', ''], 0]);
    expect(await exited).toBe(0);
  });

  it('without a session bus the tray says so in one line', () => {
    const { DBUS_SESSION_BUS_ADDRESS: _, ...noBus } = env;
    const r = cli(['tray', '--workspace', ws], noBus);
    expect(r.code).toBe(69);
    expect(r.stderr).toBe(
      'cowork-vm: no D-Bus session bus: DBUS_SESSION_BUS_ADDRESS is not set — run `cowork-vm tray` inside your desktop session\n',
    );
  });
});
