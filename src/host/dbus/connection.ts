import { createConnection as netConnect } from 'node:net';
import { CoworkError } from '../errors.js';
import { parseBusAddress } from './address.js';
import { introspectionXml } from './introspect.js';
import { dbusNative, FLAGS, MESSAGE_TYPE, type RawConnection, type RawMessage } from './native.js';

/**
 * One connection to a message bus (the session bus, or a test's private dbus-daemon): calls
 * with a deadline, signal subscriptions, and exported objects whose methods and properties are
 * dispatched here. Every incoming message is handled inside a try block and every bad call is
 * answered with a D-Bus error, so no peer on the bus can crash the process that owns this.
 */

export interface CallRequest {
  destination: string;
  path: string;
  interface: string;
  member: string;
  signature?: string;
  body?: unknown[];
  /** Do not let the bus start a service for this call (no D-Bus activation). */
  noAutoStart?: boolean;
  timeoutMs?: number;
}

export interface SignalRule {
  interface: string;
  member: string;
  /** Asks the bus to deliver only this sender's signals; the handler must still check `msg.sender`. */
  sender?: string;
  path?: string;
  arg0?: string;
}

export type SignalHandler = (body: unknown[], msg: RawMessage) => void;

export interface ExportedMethod {
  in?: string;
  out?: string;
  /** Returns the reply's body (one element per complete type of `out`). */
  handler: (args: unknown[], msg: RawMessage) => unknown[] | Promise<unknown[]>;
}

export interface ExportedInterface {
  name: string;
  methods?: Record<string, ExportedMethod>;
  properties?: Record<string, { type: string; get: () => unknown }>;
  /** Signal name → signature, for introspection. */
  signals?: Record<string, string>;
}

/** A D-Bus error reply, with its error name (org.freedesktop.DBus.Error.ServiceUnknown…). */
export class DbusCallError extends CoworkError {
  constructor(
    readonly dbusName: string,
    message: string,
  ) {
    super('unavailable', `${dbusName}: ${message}`);
  }
}

const DEFAULT_TIMEOUT_MS = 5_000;
const BUS = {
  destination: 'org.freedesktop.DBus',
  path: '/org/freedesktop/DBus',
  interface: 'org.freedesktop.DBus',
};
const STANDARD = {
  props: 'org.freedesktop.DBus.Properties',
  introspect: 'org.freedesktop.DBus.Introspectable',
  peer: 'org.freedesktop.DBus.Peer',
};

interface PendingCall {
  resolve: (body: unknown[]) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class DbusConnection {
  private serial = 1;
  private readonly pending = new Map<number, PendingCall>();
  private readonly signals = new Set<{ rule: SignalRule; handler: SignalHandler }>();
  private readonly objects = new Map<string, Map<string, ExportedInterface>>();
  private readonly closeListeners = new Set<(err?: Error) => void>();
  private closed = false;
  uniqueName = '';

  private constructor(private readonly raw: RawConnection) {
    raw.on('message', (msg) => {
      try {
        this.onMessage(msg);
      } catch {
        /* a message we cannot handle is dropped; the peer times out */
      }
    });
    raw.on('error', (err) => this.shutdown(err));
    raw.on('end', () => this.shutdown());
    raw.stream.on('close', () => this.shutdown());
  }

  /**
   * Connects and says Hello. `address` defaults to DBUS_SESSION_BUS_ADDRESS; no address, an
   * address of a kind we cannot open, or a bus that does not answer is a CoworkError naming it.
   */
  static async connect(opts: { address?: string; timeoutMs?: number } = {}): Promise<DbusConnection> {
    const address = opts.address ?? process.env.DBUS_SESSION_BUS_ADDRESS;
    if (!address) {
      throw new CoworkError(
        'unavailable',
        'no D-Bus session bus: DBUS_SESSION_BUS_ADDRESS is not set (run inside a desktop session, or under dbus-run-session)',
      );
    }
    const socketPath = parseBusAddress(address);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const stream = netConnect(socketPath);
    const raw = dbusNative().createConnection({ stream, authMethods: ['EXTERNAL'] });
    const conn = await new Promise<DbusConnection>((resolve, reject) => {
      const fail = (err: Error) => {
        clearTimeout(timer);
        stream.destroy();
        reject(CoworkError.from(err, 'unavailable', `cannot connect to the D-Bus session bus at ${address}`));
      };
      const timer = setTimeout(() => fail(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
      raw.on('error', fail);
      raw.on('connect', () => {
        clearTimeout(timer);
        resolve(new DbusConnection(raw));
      });
    });
    try {
      const [name] = await conn.call({ ...BUS, member: 'Hello', timeoutMs });
      conn.uniqueName = String(name);
    } catch (err) {
      conn.close();
      throw CoworkError.from(err, 'unavailable', `the D-Bus session bus at ${address} refused Hello`);
    }
    return conn;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  call(req: CallRequest): Promise<unknown[]> {
    if (this.closed) return Promise.reject(new CoworkError('unavailable', 'the D-Bus connection is closed'));
    const serial = this.serial++;
    const timeoutMs = req.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(serial);
        reject(
          new CoworkError(
            'timeout',
            `${req.destination} did not answer ${req.interface}.${req.member} in ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      this.pending.set(serial, { resolve, reject, timer });
      try {
        this.raw.message({
          type: MESSAGE_TYPE.methodCall,
          serial,
          flags: req.noAutoStart ? FLAGS.noAutoStart : 0,
          destination: req.destination,
          path: req.path,
          interface: req.interface,
          member: req.member,
          ...(req.signature ? { signature: req.signature, body: req.body ?? [] } : {}),
        });
      } catch (err) {
        clearTimeout(timer);
        this.pending.delete(serial);
        reject(CoworkError.from(err, 'internal', `cannot encode ${req.interface}.${req.member}`));
      }
    });
  }

  /** A method of the bus itself (NameHasOwner, GetNameOwner, RequestName…). */
  callBus(member: string, signature?: string, body?: unknown[]): Promise<unknown[]> {
    return this.call({ ...BUS, member, signature, body });
  }

  /** Subscribes (AddMatch) and returns the unsubscribe. */
  async onSignal(rule: SignalRule, handler: SignalHandler): Promise<() => void> {
    const entry = { rule, handler };
    this.signals.add(entry);
    const match = matchRule(rule);
    try {
      await this.callBus('AddMatch', 's', [match]);
    } catch (err) {
      this.signals.delete(entry);
      throw err;
    }
    return () => {
      if (!this.signals.delete(entry)) return;
      if (!this.closed) this.callBus('RemoveMatch', 's', [match]).catch(() => {});
    };
  }

  /** Serves `iface` at `path` (methods, properties, introspection). */
  export(path: string, iface: ExportedInterface): void {
    let ifaces = this.objects.get(path);
    if (!ifaces) {
      ifaces = new Map();
      this.objects.set(path, ifaces);
    }
    ifaces.set(iface.name, iface);
  }

  emitSignal(path: string, iface: string, member: string, signature?: string, body?: unknown[]): void {
    if (this.closed) return;
    this.send({
      type: MESSAGE_TYPE.signal,
      path,
      interface: iface,
      member,
      ...(signature ? { signature, body: body ?? [] } : {}),
    });
  }

  onClose(listener: (err?: Error) => void): () => void {
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  close(): void {
    this.shutdown();
  }

  private send(msg: RawMessage): void {
    this.raw.message({ ...msg, serial: this.serial++ });
  }

  private shutdown(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    for (const [serial, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new CoworkError('unavailable', 'the D-Bus connection closed', err));
      this.pending.delete(serial);
    }
    try {
      this.raw.stream.destroy();
    } catch {
      /* already gone */
    }
    for (const l of this.closeListeners) l(err);
  }

  private onMessage(msg: RawMessage): void {
    if (msg.type === MESSAGE_TYPE.methodReturn || msg.type === MESSAGE_TYPE.error) {
      const p = msg.replySerial === undefined ? undefined : this.pending.get(msg.replySerial);
      if (!p) return;
      this.pending.delete(msg.replySerial as number);
      clearTimeout(p.timer);
      if (msg.type === MESSAGE_TYPE.methodReturn) p.resolve(msg.body ?? []);
      else {
        const text = typeof msg.body?.[0] === 'string' ? (msg.body[0] as string) : '';
        p.reject(new DbusCallError(msg.errorName ?? 'org.freedesktop.DBus.Error.Failed', text));
      }
      return;
    }
    if (msg.type === MESSAGE_TYPE.signal) {
      for (const s of this.signals) {
        if (!signalMatches(s.rule, msg)) continue;
        try {
          s.handler(msg.body ?? [], msg);
        } catch {
          /* one handler's failure is its own */
        }
      }
      return;
    }
    if (msg.type === MESSAGE_TYPE.methodCall) void this.dispatch(msg);
  }

  private async dispatch(msg: RawMessage): Promise<void> {
    const wantsReply = ((msg.flags ?? 0) & FLAGS.noReplyExpected) === 0;
    try {
      const [signature, body] = await this.serve(msg);
      if (wantsReply) this.reply(msg, signature, body);
    } catch (err) {
      if (!wantsReply) return;
      const name = err instanceof DbusCallError ? err.dbusName : 'org.freedesktop.DBus.Error.Failed';
      const text = err instanceof DbusCallError ? err.message.slice(name.length + 2) : (err as Error).message;
      try {
        this.send({
          type: MESSAGE_TYPE.error,
          replySerial: msg.serial,
          destination: msg.sender,
          errorName: name,
          signature: 's',
          body: [text],
        });
      } catch {
        /* the peer is gone */
      }
    }
  }

  private reply(msg: RawMessage, signature: string | undefined, body: unknown[]): void {
    try {
      this.send({
        type: MESSAGE_TYPE.methodReturn,
        replySerial: msg.serial,
        destination: msg.sender,
        ...(signature ? { signature, body } : {}),
      });
    } catch (err) {
      // The handler's answer did not fit its signature: a bug here, told to the caller as one.
      throw new DbusCallError(
        'org.freedesktop.DBus.Error.Failed',
        `cannot encode the reply: ${(err as Error).message}`,
      );
    }
  }

  /** The reply (signature, body) of a method call on one of our objects, or a DbusCallError. */
  private async serve(msg: RawMessage): Promise<[string | undefined, unknown[]]> {
    const ifaces = msg.path === undefined ? undefined : this.objects.get(msg.path);
    const args = msg.body ?? [];
    if (msg.interface === STANDARD.introspect && msg.member === 'Introspect') {
      return ['s', [introspectionXml(msg.path ?? '/', ifaces, [...this.objects.keys()])]];
    }
    if (msg.interface === STANDARD.peer) {
      if (msg.member === 'Ping') return [undefined, []];
      throw new DbusCallError(
        'org.freedesktop.DBus.Error.UnknownMethod',
        `no method ${msg.member} on ${STANDARD.peer}`,
      );
    }
    if (!ifaces)
      throw new DbusCallError('org.freedesktop.DBus.Error.UnknownObject', `no object at ${msg.path}`);
    if (msg.interface === STANDARD.props) return this.serveProperties(msg, ifaces, args);
    const iface = msg.interface
      ? ifaces.get(msg.interface)
      : [...ifaces.values()].find((i) => i.methods?.[msg.member ?? '']);
    if (!iface)
      throw new DbusCallError(
        'org.freedesktop.DBus.Error.UnknownInterface',
        `no interface ${msg.interface} at ${msg.path}`,
      );
    const method = Object.hasOwn(iface.methods ?? {}, msg.member ?? '')
      ? iface.methods?.[msg.member ?? '']
      : undefined;
    if (!method)
      throw new DbusCallError(
        'org.freedesktop.DBus.Error.UnknownMethod',
        `no method ${msg.member} on ${iface.name}`,
      );
    if ((msg.signature ?? '') !== (method.in ?? ''))
      throw new DbusCallError(
        'org.freedesktop.DBus.Error.InvalidArgs',
        `${iface.name}.${msg.member} takes (${method.in ?? ''}), got (${msg.signature ?? ''})`,
      );
    return [method.out, await method.handler(args, msg)];
  }

  private serveProperties(
    msg: RawMessage,
    ifaces: Map<string, ExportedInterface>,
    args: unknown[],
  ): [string, unknown[]] {
    const name = typeof args[0] === 'string' ? args[0] : '';
    const iface = ifaces.get(name);
    const props = iface?.properties ?? {};
    if (msg.member === 'GetAll' && msg.signature === 's') {
      return ['a{sv}', [Object.entries(props).map(([k, p]) => [k, [p.type, p.get()]])]];
    }
    if (msg.member === 'Get' && msg.signature === 'ss') {
      const key = String(args[1]);
      const prop = Object.hasOwn(props, key) ? props[key] : undefined;
      if (!prop)
        throw new DbusCallError(
          'org.freedesktop.DBus.Error.UnknownProperty',
          `no property ${key} on ${name}`,
        );
      return ['v', [[prop.type, prop.get()]]];
    }
    if (msg.member === 'Set')
      throw new DbusCallError('org.freedesktop.DBus.Error.PropertyReadOnly', 'read-only');
    throw new DbusCallError(
      'org.freedesktop.DBus.Error.InvalidArgs',
      `bad ${STANDARD.props}.${msg.member} call`,
    );
  }
}

function matchRule(rule: SignalRule): string {
  const q = (v: string) => `'${v.replace(/'/g, "'\\''")}'`;
  const parts = [`type='signal'`, `interface=${q(rule.interface)}`, `member=${q(rule.member)}`];
  if (rule.sender) parts.push(`sender=${q(rule.sender)}`);
  if (rule.path) parts.push(`path=${q(rule.path)}`);
  if (rule.arg0 !== undefined) parts.push(`arg0=${q(rule.arg0)}`);
  return parts.join(',');
}

function signalMatches(rule: SignalRule, msg: RawMessage): boolean {
  if (msg.interface !== rule.interface || msg.member !== rule.member) return false;
  if (rule.path !== undefined && msg.path !== rule.path) return false;
  if (rule.arg0 !== undefined && msg.body?.[0] !== rule.arg0) return false;
  return true;
}
