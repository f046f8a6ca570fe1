import type { Origin } from '../api/controller.js';
import type { ApprovalBroker, PendingApproval, Verdict } from '../approvals/types.js';
import { DbusConnection, type RawMessage, variant } from '../dbus/index.js';
import { CoworkError } from '../errors.js';
import { escapeControl } from '../timeline/index.js';

/**
 * Desktop notifications as an approval frontend: each new pending approval raises an
 * org.freedesktop.Notifications notification with Approve / Deny; the action the user picks is
 * answered through the controller (origin `notification`, context local); an approval answered
 * elsewhere closes its notification. Anything wrong with the bus or the notification server is
 * one notice line: approvals keep working through every other frontend.
 */

export const NOTIFICATIONS = {
  name: 'org.freedesktop.Notifications',
  path: '/org/freedesktop/Notifications',
  iface: 'org.freedesktop.Notifications',
} as const;
export const NOTIFICATION_ORIGIN: Origin = { id: 'notification', context: 'local' };

const URGENCY_CRITICAL = 2;
const MAX_BODY_CHARS = 1_000;
const EARLY_SIGNALS = 32;

export interface DesktopNotifierOptions {
  approvals: Pick<ApprovalBroker, 'on' | 'off' | 'list'>;
  /** Where an action goes: the controller's approvalsAnswer. */
  answer: (id: string, verdict: Omit<Verdict, 'by'>, origin: Origin) => void;
  /** Default DBUS_SESSION_BUS_ADDRESS. */
  address?: string;
  onNotice: (line: string) => void;
  now?: () => number;
}

export class DesktopNotifier {
  /** approval id → notification id, while the notification is open. */
  private readonly shown = new Map<string, number>();
  private readonly byNotification = new Map<number, string>();
  private readonly unsubscribe: (() => void)[] = [];
  /** The unique bus name of the notification server; undefined when none runs. */
  private owner: string | undefined;
  /** One activation attempt per controller: a server started on demand may answer the first Notify. */
  private mayActivate: boolean;
  private noticedMissing = false;
  private closed = false;
  /**
   * Signals for ids we do not know yet. The server's reply to Notify and a signal right behind it
   * (a quick click) arrive in one read; the reply's continuation runs after the signal's handler,
   * so the signal waits here until its id is known. Bounded: only the newest few are kept.
   */
  private readonly early = new Map<number, { action?: string; closed?: boolean }>();
  /** Whether the server reads the body as markup (then it is escaped); asked once per server. */
  private markup: Promise<boolean> | undefined;

  private constructor(
    private readonly bus: DbusConnection,
    private readonly opts: DesktopNotifierOptions,
    owner: string | undefined,
    activatable: boolean,
  ) {
    this.owner = owner;
    this.mayActivate = activatable;
  }

  /** Connects and attaches to the broker; undefined (after one notice) when there is no session bus. */
  static async start(opts: DesktopNotifierOptions): Promise<DesktopNotifier | undefined> {
    let bus: DbusConnection;
    try {
      bus = await DbusConnection.connect({ address: opts.address });
    } catch (err) {
      opts.onNotice(`desktop notifications are off: ${CoworkError.from(err).message}`);
      return undefined;
    }
    try {
      const [owner, activatable] = await Promise.all([
        bus.callBus('GetNameOwner', 's', [NOTIFICATIONS.name]).then(
          ([o]) => String(o),
          () => undefined,
        ),
        bus.callBus('ListActivatableNames').then(
          ([names]) => Array.isArray(names) && names.includes(NOTIFICATIONS.name),
          () => false,
        ),
      ]);
      const notifier = new DesktopNotifier(bus, opts, owner, activatable);
      await notifier.attach();
      return notifier;
    } catch (err) {
      bus.close();
      opts.onNotice(`desktop notifications are off: ${CoworkError.from(err).message}`);
      return undefined;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const u of this.unsubscribe) u();
    this.bus.close();
  }

  private async attach(): Promise<void> {
    const { iface } = NOTIFICATIONS;
    const subs = await Promise.all([
      this.bus.onSignal(
        {
          interface: 'org.freedesktop.DBus',
          member: 'NameOwnerChanged',
          sender: 'org.freedesktop.DBus',
          arg0: NOTIFICATIONS.name,
        },
        (body, msg) => this.onOwnerChanged(body, msg),
      ),
      this.bus.onSignal(
        { interface: iface, member: 'ActionInvoked', sender: NOTIFICATIONS.name },
        (body, msg) => this.onAction(body, msg),
      ),
      this.bus.onSignal(
        { interface: iface, member: 'NotificationClosed', sender: NOTIFICATIONS.name },
        (body, msg) => this.onClosed(body, msg),
      ),
    ]);
    this.unsubscribe.push(...subs);
    const onPending = (p: PendingApproval) => void this.notify(p);
    const onAnswered = (p: PendingApproval) => this.withdraw(p.id);
    this.opts.approvals.on('pending', onPending);
    this.opts.approvals.on('answered', onAnswered);
    this.unsubscribe.push(() => {
      this.opts.approvals.off('pending', onPending);
      this.opts.approvals.off('answered', onAnswered);
    });
    for (const p of this.opts.approvals.list()) void this.notify(p);
    this.bus.onClose(() => {
      if (!this.closed) this.opts.onNotice('desktop notifications are off: the D-Bus session bus went away');
    });
  }

  private async notify(p: PendingApproval): Promise<void> {
    if (this.closed || this.bus.isClosed) return;
    const activate = this.owner === undefined && this.mayActivate;
    if (this.owner === undefined && !activate) return this.missing();
    this.mayActivate = false;
    // Capabilities cannot be asked before the server runs: escape, to be safe.
    const markup = activate ? true : await this.bodyMarkup();
    const now = (this.opts.now ?? Date.now)();
    const remaining = Math.min(2 ** 31 - 1, Math.max(1, Math.round(p.expiresAt - now)));
    let id: number;
    try {
      const [nid] = await this.bus.call({
        destination: NOTIFICATIONS.name,
        path: NOTIFICATIONS.path,
        interface: NOTIFICATIONS.iface,
        member: 'Notify',
        signature: 'susssasa{sv}i',
        body: [
          'cowork-vm',
          0,
          'dialog-warning',
          `Approve ${escapeControl(p.tool)}${p.taskId ? ` for task ${escapeControl(p.taskId)}` : ''}?`,
          markup ? escapeMarkup(notificationBody(p)) : notificationBody(p),
          ['approve', 'Approve', 'deny', 'Deny'],
          [['urgency', variant('y', URGENCY_CRITICAL)]],
          remaining,
        ],
        noAutoStart: !activate,
        timeoutMs: activate ? 25_000 : 5_000,
      });
      id = Number(nid);
    } catch (err) {
      if (activate) return this.missing(`starting one failed: ${CoworkError.from(err).message}`);
      if (this.owner === undefined) return this.missing();
      this.opts.onNotice(
        `desktop notification for approval ${p.id} failed: ${CoworkError.from(err).message}`,
      );
      return;
    }
    // Answered while the server was showing it: take it down again.
    if (!this.opts.approvals.list().some((q) => q.id === p.id)) return this.closeNotification(id);
    this.shown.set(p.id, id);
    this.byNotification.set(id, p.id);
    const early = this.early.get(id);
    this.early.delete(id);
    if (early?.action) this.act(id, early.action);
    else if (early?.closed) this.forget(id);
  }

  private remember(id: number, what: { action?: string; closed?: boolean }): void {
    this.early.set(id, { ...this.early.get(id), ...what });
    while (this.early.size > EARLY_SIGNALS) {
      const oldest = this.early.keys().next().value;
      if (oldest === undefined) break;
      this.early.delete(oldest);
    }
  }

  private bodyMarkup(): Promise<boolean> {
    this.markup ??= this.bus
      .call({
        destination: NOTIFICATIONS.name,
        path: NOTIFICATIONS.path,
        interface: NOTIFICATIONS.iface,
        member: 'GetCapabilities',
        noAutoStart: true,
      })
      // Unknown: escape anyway. A server without markup then shows an entity, never a live link.
      .then(
        ([caps]) => !Array.isArray(caps) || caps.includes('body-markup'),
        () => true,
      );
    return this.markup;
  }

  private missing(why?: string): void {
    if (this.noticedMissing) return;
    this.noticedMissing = true;
    this.opts.onNotice(
      `no notification server on the D-Bus session bus (${NOTIFICATIONS.name}${why ? `; ${why}` : ''}): approvals are not shown as desktop notifications`,
    );
  }

  private withdraw(approvalId: string): void {
    const id = this.shown.get(approvalId);
    if (id === undefined) return;
    this.forget(id);
    this.closeNotification(id);
  }

  private closeNotification(id: number): void {
    this.bus
      .call({
        destination: NOTIFICATIONS.name,
        path: NOTIFICATIONS.path,
        interface: NOTIFICATIONS.iface,
        member: 'CloseNotification',
        signature: 'u',
        body: [id],
        noAutoStart: true,
      })
      .catch(() => {});
  }

  private forget(id: number): void {
    const approvalId = this.byNotification.get(id);
    this.byNotification.delete(id);
    if (approvalId !== undefined) this.shown.delete(approvalId);
  }

  /** Only the server's own signals count: any peer can send us a signal naming a notification id. */
  private fromServer(msg: RawMessage): boolean {
    return this.owner !== undefined && msg.sender === this.owner;
  }

  private onAction(body: unknown[], msg: RawMessage): void {
    if (!this.fromServer(msg)) return;
    const [id, key] = body;
    if (typeof id !== 'number' || typeof key !== 'string') return;
    if (this.byNotification.has(id)) this.act(id, key);
    else this.remember(id, { action: key });
  }

  private act(id: number, key: string): void {
    const approvalId = this.byNotification.get(id);
    if (approvalId === undefined || (key !== 'approve' && key !== 'deny')) return;
    this.forget(id);
    try {
      this.opts.answer(
        approvalId,
        { kind: key === 'approve' ? 'approve-once' : 'deny' },
        NOTIFICATION_ORIGIN,
      );
    } catch (err) {
      // Answered elsewhere a moment earlier: the first answer stands.
      this.opts.onNotice(`notification answer to ${approvalId} not taken: ${CoworkError.from(err).message}`);
    }
  }

  /** Dismissed or expired: nothing is answered (the approval still waits, or times out as a deny). */
  private onClosed(body: unknown[], msg: RawMessage): void {
    if (!this.fromServer(msg)) return;
    const id = Number(body[0]);
    if (this.byNotification.has(id)) this.forget(id);
    else this.remember(id, { closed: true });
  }

  private onOwnerChanged(body: unknown[], msg: RawMessage): void {
    if (msg.sender !== 'org.freedesktop.DBus' || body[0] !== NOTIFICATIONS.name) return;
    const next = typeof body[2] === 'string' && body[2] !== '' ? body[2] : undefined;
    // A new server knows nothing of the old one's notifications.
    this.shown.clear();
    this.byNotification.clear();
    this.early.clear();
    this.markup = undefined;
    this.owner = next;
    if (next) {
      this.noticedMissing = false;
      for (const p of this.opts.approvals.list()) void this.notify(p);
    }
  }
}

/** The command (or input), where, and why it asks; plain text with control characters shown. */
export function notificationBody(p: PendingApproval): string {
  const what = p.command ?? (p.input === undefined ? p.tool : JSON.stringify(p.input));
  const lines = [
    escapeControl(what),
    ...(p.cwd !== undefined ? [`in ${escapeControl(p.cwd)}`] : []),
    `why: ${escapeControl(p.reasons.join('; ') || 'the policy asks')}`,
    `risk: ${p.risk} · approval ${p.id}`,
  ];
  const text = lines.join('\n');
  return text.length > MAX_BODY_CHARS ? `${text.slice(0, MAX_BODY_CHARS - 1)}…` : text;
}

/** The body as text inside the markup subset servers accept (`<b>`, `<a href>`…): nothing the agent wrote becomes markup. */
export function escapeMarkup(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
