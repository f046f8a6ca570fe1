import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { plain } from '../../src/host/dbus/index.js';

/*
 * The desktop side of a session bus, implemented by the tests: a notification server (owns
 * org.freedesktop.Notifications) and a StatusNotifierWatcher (owns org.kde.StatusNotifierWatcher).
 * They use @homebridge/dbus-native's own MessageBus (its exportInterface and invoke), not our
 * wrapper, so the code under test talks to a D-Bus implementation other than its own.
 */

interface LibBus {
  connection: EventEmitter & { end(): void; stream: { destroy(): void } };
  name?: string;
  requestName(name: string, flags: number, cb: (err: unknown, code: number) => void): void;
  exportInterface(obj: object, path: string, iface: object): void;
  invoke(msg: object, cb: (err: { name: string; message: string } | null, ...body: unknown[]) => void): void;
  addMatch(rule: string, cb: (err: unknown) => void): void;
  invokeDbus(msg: object, cb: (err: unknown, ...body: unknown[]) => void): void;
}

const dbus = createRequire(import.meta.url)('@homebridge/dbus-native') as {
  sessionBus(opts: { busAddress: string }): LibBus;
};

async function libBus(address: string): Promise<LibBus> {
  const bus = dbus.sessionBus({ busAddress: address });
  // Hello's answer names the connection; wait for it.
  for (let i = 0; i < 200 && !bus.name; i++) await new Promise((r) => setTimeout(r, 10));
  if (!bus.name) throw new Error('the test bus connection got no name');
  return bus;
}

function own(bus: LibBus, name: string): Promise<void> {
  return new Promise((resolve, reject) =>
    bus.requestName(name, 4, (err, code) =>
      err || code !== 1 ? reject(new Error(`cannot own ${name}: ${String(err ?? code)}`)) : resolve(),
    ),
  );
}

function close(bus: LibBus): void {
  bus.connection.end();
  bus.connection.stream.destroy();
}

export interface Notification {
  id: number;
  appName: string;
  summary: string;
  body: string;
  actions: string[];
  hints: Record<string, unknown>;
  expireTimeout: number;
  sender: string;
}

export interface NotificationServer {
  uniqueName: string;
  notified: Notification[];
  closed: number[];
  capabilities: string[];
  /** Set: every Notify is answered with this action right after its reply. */
  autoInvoke?: string;
  invoke(id: number, action: string): void;
  stop(): void;
}

export async function startNotificationServer(address: string): Promise<NotificationServer> {
  const bus = await libBus(address);
  const notified: Notification[] = [];
  const closed: number[] = [];
  let next = 100;
  const server = Object.assign(new EventEmitter(), {
    Notify(
      appName: string,
      _replaces: number,
      _icon: string,
      summary: string,
      body: string,
      actions: string[],
      hints: unknown,
      expireTimeout: number,
      msg: { sender: string },
    ) {
      const id = next++;
      // A user who clicks at once: the action leaves right behind the reply.
      const auto = result.autoInvoke;
      if (auto) setImmediate(() => result.invoke(id, auto));
      notified.push({
        id,
        appName,
        summary,
        body,
        actions,
        hints: plain(hints) as Record<string, unknown>,
        expireTimeout,
        sender: msg.sender,
      });
      return id;
    },
    CloseNotification(id: number) {
      closed.push(id);
      server.emit('NotificationClosed', id, 3);
    },
    GetCapabilities() {
      return result.capabilities;
    },
    GetServerInformation() {
      return ['cowork-test', 'cowork-vm tests', '1', '1.2'];
    },
  });
  bus.exportInterface(server, '/org/freedesktop/Notifications', {
    name: 'org.freedesktop.Notifications',
    methods: {
      Notify: ['susssasa{sv}i', 'u'],
      CloseNotification: ['u', ''],
      GetCapabilities: ['', 'as'],
      GetServerInformation: ['', 'ssss'],
    },
    signals: { ActionInvoked: ['us'], NotificationClosed: ['uu'] },
  });
  await own(bus, 'org.freedesktop.Notifications');
  const result: NotificationServer = {
    uniqueName: bus.name as string,
    notified,
    closed,
    capabilities: ['actions', 'body', 'body-markup'],
    invoke: (id, action) => {
      server.emit('ActionInvoked', id, action);
      server.emit('NotificationClosed', id, 2);
    },
    stop: () => close(bus),
  };
  return result;
}

export interface Watcher {
  registered: { service: string; sender: string }[];
  /** A client of the bus, for calling the item and reading its signals. */
  call(
    dest: string,
    path: string,
    iface: string,
    member: string,
    signature?: string,
    body?: unknown[],
  ): Promise<unknown[]>;
  property(dest: string, path: string, iface: string, name: string): Promise<unknown>;
  signals: { path?: string; interface?: string; member?: string; body?: unknown[]; sender?: string }[];
  stop(): void;
}

export async function startWatcher(address: string): Promise<Watcher> {
  const bus = await libBus(address);
  const registered: Watcher['registered'] = [];
  const watcher = Object.assign(new EventEmitter(), {
    RegisterStatusNotifierItem(service: string, msg: { sender: string }) {
      registered.push({ service, sender: msg.sender });
      watcher.emit('StatusNotifierItemRegistered', service);
    },
    RegisterStatusNotifierHost() {},
    RegisteredStatusNotifierItems: [] as string[],
    IsStatusNotifierHostRegistered: true,
    ProtocolVersion: 0,
  });
  bus.exportInterface(watcher, '/StatusNotifierWatcher', {
    name: 'org.kde.StatusNotifierWatcher',
    methods: { RegisterStatusNotifierItem: ['s', ''], RegisterStatusNotifierHost: ['s', ''] },
    properties: {
      RegisteredStatusNotifierItems: 'as',
      IsStatusNotifierHostRegistered: 'b',
      ProtocolVersion: 'i',
    },
    signals: { StatusNotifierItemRegistered: ['s'] },
  });
  await own(bus, 'org.kde.StatusNotifierWatcher');
  const signals: Watcher['signals'] = [];
  await new Promise<void>((resolve, reject) =>
    bus.addMatch("type='signal'", (err) => (err ? reject(new Error(String(err))) : resolve())),
  );
  bus.connection.on('message', (m: { type: number } & Watcher['signals'][number]) => {
    if (m.type === 4)
      signals.push({
        path: m.path,
        interface: m.interface,
        member: m.member,
        body: m.body,
        sender: m.sender,
      });
  });
  const call: Watcher['call'] = (destination, path, iface, member, signature, body) =>
    new Promise((resolve, reject) =>
      bus.invoke({ destination, path, interface: iface, member, signature, body }, (err, ...out) =>
        err ? reject(new Error(`${err.name}: ${err.message}`)) : resolve(out),
      ),
    );
  return {
    registered,
    call,
    property: async (dest, path, iface, name) =>
      plain((await call(dest, path, 'org.freedesktop.DBus.Properties', 'Get', 'ss', [iface, name]))[0]),
    signals,
    stop: () => close(bus),
  };
}
