import type { ApiClient } from '../api/client.js';
import { DbusConnection, type RawMessage } from '../dbus/index.js';
import { CoworkError } from '../errors.js';
import { buildMenu } from '../menu/build.js';
import type { MenuAction, MenuModel } from '../menu/model.js';
import { DbusMenu } from './dbusmenu.js';
import { ControllerFollower } from './follow.js';
import { StatusItem } from './status-item.js';

/**
 * `cowork-vm tray`: the menu model as a Linux StatusNotifierItem with a dbusmenu menu. It
 * follows one workspace's controller (follow.ts) and turns the entry the user picks into a
 * contract call (approve/deny → approvals.answer, stop → stop) or a CLI command (start,
 * dashboard), so it decides nothing itself.
 */

export const WATCHER = {
  name: 'org.kde.StatusNotifierWatcher',
  path: '/StatusNotifierWatcher',
  iface: 'org.kde.StatusNotifierWatcher',
} as const;

export interface TrayOptions {
  workspace: string;
  /** Default DBUS_SESSION_BUS_ADDRESS. */
  address?: string;
  /** The CLI has a `dashboard` command to run. */
  dashboard: boolean;
  locate: (workspace: string) => { workspace: string; socketPath: string };
  connect: (workspace: string) => Promise<ApiClient<'local'>>;
  recentWorkspaces: () => string[];
  /** Runs a `cowork-vm` command in the background (start, dashboard). */
  runCli: (args: string[]) => void;
  onLine: (line: string) => void;
  pollMs?: number;
}

export interface RunningTray {
  /** The bus name the item is registered under. */
  service: string;
  /** Resolves when the user chose Quit, close() was called or the bus went away. */
  done: Promise<'quit' | 'closed' | 'bus-lost'>;
  close(): void;
}

export async function startTray(opts: TrayOptions): Promise<RunningTray> {
  const bus = await DbusConnection.connect({ address: opts.address });
  let workspace = opts.locate(opts.workspace).workspace;
  const stoppedModel = (): MenuModel =>
    buildMenu({
      status: null,
      pending: [],
      // The workspace this tray follows is always offered first.
      recentWorkspaces: [workspace, ...opts.recentWorkspaces().filter((w) => w !== workspace)],
      role: 'admin', // the tray runs as the owner, like the CLI
      dashboard: opts.dashboard,
    });
  let finish: (how: 'quit' | 'closed' | 'bus-lost') => void = () => {};
  const done = new Promise<'quit' | 'closed' | 'bus-lost'>((r) => (finish = r));

  const first = stoppedModel();
  const item = new StatusItem(bus, first.status);
  let follower: ControllerFollower;
  const menu = new DbusMenu(bus, first, (a) => void act(a));
  const follow = (ws: string): ControllerFollower => {
    const loc = opts.locate(ws);
    workspace = loc.workspace;
    const f = new ControllerFollower({
      socketPath: loc.socketPath,
      connect: () => opts.connect(loc.workspace),
      dashboard: opts.dashboard,
      stoppedModel,
      onModel: (m) => {
        if (follower !== f) return;
        item.update(m.status);
        menu.update(m);
      },
      onLine: opts.onLine,
      pollMs: opts.pollMs,
    });
    return f;
  };

  const act = async (a: MenuAction): Promise<void> => {
    const client = follower.current;
    try {
      switch (a.kind) {
        case 'approve':
        case 'deny':
          if (!client) throw new CoworkError('invalidState', 'no sandbox is running');
          await client.call('approvals.answer', {
            id: a.approvalId,
            kind: a.kind === 'approve' ? 'approve-once' : 'deny',
          });
          return;
        case 'stop':
          if (!client) throw new CoworkError('invalidState', 'no sandbox is running');
          await client.call('stop');
          return;
        case 'open-dashboard':
          opts.runCli(['dashboard', '--workspace', workspace]);
          return;
        case 'start-workspace':
          opts.runCli(['start', '--detach', '--workspace', a.workspace]);
          if (a.workspace !== workspace) {
            follower.stop();
            follower = follow(a.workspace);
            follower.start();
          }
          return;
        case 'quit':
          // After the Event call's reply has gone out: the panel should not see a NoReply.
          setImmediate(() => finish('quit'));
          return;
      }
    } catch (err) {
      opts.onLine(`${a.kind} failed: ${CoworkError.from(err).message}`);
    }
  };

  const service = `org.kde.StatusNotifierItem-${process.pid}-1`;
  const [reply] = await bus.callBus('RequestName', 'su', [service, 4 /* DO_NOT_QUEUE */]);
  if (reply !== 1) {
    bus.close();
    throw new CoworkError(
      'invalidState',
      `cannot own ${service} on the session bus (reply ${String(reply)})`,
    );
  }
  const register = async (): Promise<void> => {
    try {
      await bus.call({
        destination: WATCHER.name,
        path: WATCHER.path,
        interface: WATCHER.iface,
        member: 'RegisterStatusNotifierItem',
        signature: 's',
        body: [service],
        noAutoStart: true,
      });
      opts.onLine(`registered with ${WATCHER.name} as ${service}`);
    } catch {
      opts.onLine(`no ${WATCHER.name} on the session bus yet (no panel with a tray?); waiting for one`);
    }
  };
  // A panel that (re)starts brings a new watcher, which knows no items: register again.
  const unwatch = await bus.onSignal(
    {
      interface: 'org.freedesktop.DBus',
      member: 'NameOwnerChanged',
      sender: 'org.freedesktop.DBus',
      arg0: WATCHER.name,
    },
    (body: unknown[], msg: RawMessage) => {
      if (msg.sender === 'org.freedesktop.DBus' && typeof body[2] === 'string' && body[2] !== '')
        void register();
    },
  );
  await register();
  follower = follow(opts.workspace);
  follower.start();
  bus.onClose(() => finish('bus-lost'));
  void done.then(() => {
    follower.stop();
    unwatch();
    bus.close();
  });
  return { service, done, close: () => finish('closed') };
}
