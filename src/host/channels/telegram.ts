import { Bot, type Context, InlineKeyboard } from 'grammy';
import type { Message } from 'grammy/types';
import { type CallName, invoke } from '../api/bindings.js';
import { METHODS, type MethodName, type ParamsOf, type ResultOf } from '../api/contract.js';
import type { ControllerApi, Origin } from '../api/controller.js';
import { roleAllows } from '../api/roles.js';
import type { PendingApproval } from '../approvals/types.js';
import { displaySafeName } from '../control/device-name.js';
import { type Clock, type SecurityRecorder, systemClock } from '../control/events.js';
import { type ControlStore, isHostPairingLimit } from '../control/store.js';
import { CoworkError } from '../errors.js';
import { ChannelAccess, type ChannelSecurityInput, type ChannelUser } from './access.js';
import { clip, formatApproval, formatProgress, formatStatus, HELP_TEXT } from './telegram-format.js';

export interface TelegramChannelOptions {
  api: ControllerApi;
  store: ControlStore;
  /** The bot token, read from the keychain by the caller (`cowork-vm secrets set telegram`). */
  token: string;
  security?: ChannelSecurityInput;
  /** Bot API server; tests point this at a local emulator. No trailing slash. */
  apiRoot?: string;
  clock?: Clock;
  recorder?: SecurityRecorder;
  logger?: { warn(message: string): void };
  /** How often pending approvals are checked for new ones to announce. */
  approvalPollMs?: number;
}

const CALLBACK = /^ap:([A-Za-z0-9_-]{1,40}):(once|deny)$/;

/**
 * Telegram as a messaging channel (grammy, long polling). Every action is checked against the
 * contract's role table and dispatched through its bindings (src/host/api) in the `gateway`
 * context with origin `telegram:<userId>`; strangers can do nothing but /pair (in pairing mode).
 */
export class TelegramChannel {
  readonly bot: Bot;
  private readonly access: ChannelAccess;
  private readonly api: ControllerApi;
  private readonly logger: { warn(message: string): void };
  /** Approvals already posted → the messages they were posted as (retired when no longer pending). */
  private readonly announced = new Map<string, { chat: number; messageId: number; text: string }[]>();
  /** Tasks started from a chat → that chat, for progress and results. */
  private readonly taskChats = new Map<string, number>();
  private readonly lastTaskOfChat = new Map<number, string>();
  private pollTimer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private polling: Promise<void> | undefined;

  constructor(private readonly opts: TelegramChannelOptions) {
    if (!opts.token)
      throw new CoworkError('invalidArgument', 'no Telegram bot token: run `cowork-vm secrets set telegram`');
    this.api = opts.api;
    this.logger = opts.logger ?? console;
    this.access = new ChannelAccess(
      'telegram',
      opts.security ?? {},
      opts.store,
      opts.clock ?? systemClock,
      opts.recorder,
    );
    this.bot = new Bot(opts.token, opts.apiRoot ? { client: { apiRoot: opts.apiRoot } } : {});
    this.bot.use((ctx, next) => this.gate(ctx, next));
    this.bot.on('message:text', (ctx) => this.onText(ctx));
    this.bot.on('callback_query:data', (ctx) => this.onButton(ctx));
    this.bot.catch((err) => this.logger.warn(`telegram: ${CoworkError.from(err.error).message}`));
  }

  /** Starts long polling; resolves once the bot is connected (getMe and deleteWebhook succeeded). */
  async start(): Promise<void> {
    this.access.announceStart(this.logger);
    await new Promise<void>((resolve, reject) => {
      this.polling = this.bot
        .start({ onStart: () => resolve(), allowed_updates: ['message', 'callback_query'] })
        .catch((err) => {
          const e = CoworkError.from(err, 'unavailable', 'Telegram bot stopped');
          this.logger.warn(e.message);
          reject(e);
        });
    });
    this.unsubscribe = this.api.timelineSubscribe((e) => this.onTimeline(e));
    this.pollTimer = setInterval(() => void this.announceApprovals(), this.opts.approvalPollMs ?? 1000);
    this.pollTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.pollTimer);
    this.unsubscribe?.();
    if (this.bot.isRunning()) await this.bot.stop();
    await this.polling;
  }

  private origin(userId: string): Origin {
    return { id: `telegram:${userId}`, context: 'gateway' };
  }

  /** A contract method as this user (a remote caller): params checked by the contract's schema. */
  private call<M extends CallName>(method: M, params: ParamsOf<M>, uid: string): Promise<ResultOf<M>> {
    const signal = new AbortController().signal;
    return invoke(method, params, { api: this.api, origin: this.origin(uid), signal });
  }

  /** Rate limit every update per user before anything else runs. */
  private async gate(ctx: Context, next: () => Promise<void>): Promise<void> {
    const uid = ctx.from?.id;
    if (uid === undefined || ctx.from?.is_bot) return;
    if (!this.access.admit(String(uid))) return;
    await next();
  }

  private allowed(user: ChannelUser | undefined, method: MethodName): boolean {
    return user !== undefined && roleAllows(user.role, METHODS[method].minRole);
  }

  private async onText(ctx: Context): Promise<void> {
    const uid = String(ctx.from!.id);
    const text = ctx.message!.text!.trim();
    const m = /^\/([a-z_]+)(?:@(\S+))?(?:\s+([\s\S]*))?$/i.exec(text);
    const user = this.access.lookup(uid);
    if (!m) {
      if (!user) this.access.refused(uid, 'message from an unpaired user');
      return; // plain chat is not a command; stay quiet
    }
    const [, command, botName, arg = ''] = m;
    if (botName && this.bot.botInfo && botName.toLowerCase() !== this.bot.botInfo.username.toLowerCase())
      return;
    const cmd = command!.toLowerCase();
    if (cmd === 'pair') return await this.onPair(ctx, uid, arg.trim());
    if (!user) {
      this.access.refused(uid, `/${cmd} from an unpaired user`);
      return; // strangers get no answer at all
    }
    await this.runCommand(ctx, uid, user, cmd, arg.trim());
  }

  private async onPair(ctx: Context, uid: string, code: string): Promise<void> {
    if (!this.access.pairingEnabled) {
      this.access.refused(uid, '/pair while the channel is in allowlist mode');
      return;
    }
    if (ctx.chat?.type !== 'private') {
      await ctx.reply('Send /pair in a private chat with me: a pairing code must not be shown to a group.');
      return;
    }
    const given = ctx.from?.username ? `@${ctx.from.username}` : (ctx.from?.first_name ?? '');
    // A display name made only of invisible characters still pairs, under the user id.
    const name = displaySafeName(given) || uid;
    try {
      const device = this.access.pair(uid, code, name);
      await ctx.reply(`Paired as ${device.role}. Send /help for commands.`);
    } catch (err) {
      const e = CoworkError.from(err);
      await ctx.reply(
        e.code !== 'limitExceeded'
          ? 'That code is not valid.'
          : isHostPairingLimit(e)
            ? 'Too many pairing attempts on this host right now: try again in a minute.'
            : 'Too many wrong codes: pairing is locked for 15 minutes.',
      );
    }
  }

  private async runCommand(
    ctx: Context,
    uid: string,
    user: ChannelUser,
    cmd: string,
    arg: string,
  ): Promise<void> {
    const need: Record<string, MethodName> = {
      status: 'status',
      run: 'tasks.start',
      cancel: 'tasks.cancel',
      approvals: 'approvals.list',
      help: 'status',
      start: 'status',
    };
    const method = need[cmd];
    if (!method) {
      await ctx.reply(`Unknown command /${cmd}.\n${HELP_TEXT}`);
      return;
    }
    if (!this.allowed(user, method)) {
      this.access.refused(uid, `/${cmd} needs role ${METHODS[method].minRole}; user is ${user.role}`);
      await ctx.reply(`/${cmd} needs the ${METHODS[method].minRole} role; you are ${user.role}.`);
      return;
    }
    try {
      if (cmd === 'help' || cmd === 'start') await ctx.reply(HELP_TEXT);
      else if (cmd === 'status') await ctx.reply(formatStatus(await this.call('status', {}, uid)));
      else if (cmd === 'run') await this.onRun(ctx, uid, arg);
      else if (cmd === 'cancel') await this.onCancel(ctx, uid, arg);
      else if (cmd === 'approvals') await this.onApprovals(ctx, uid, user);
    } catch (err) {
      await ctx.reply(clip(`/${cmd} failed: ${CoworkError.from(err).message}`));
    }
  }

  private async onRun(ctx: Context, uid: string, prompt: string): Promise<void> {
    if (!prompt) {
      await ctx.reply('Usage: /run TASK — describe what the agent should do.');
      return;
    }
    const { id } = await this.call('tasks.start', { prompt }, uid);
    this.taskChats.set(id, ctx.chat!.id);
    this.lastTaskOfChat.set(ctx.chat!.id, id);
    await ctx.reply(`Started task ${id}. I will post progress here; /cancel stops it.`);
  }

  private async onCancel(ctx: Context, uid: string, arg: string): Promise<void> {
    const id = arg || this.lastTaskOfChat.get(ctx.chat!.id);
    if (!id) {
      await ctx.reply('Usage: /cancel TASK_ID (no task was started from this chat).');
      return;
    }
    await this.call('tasks.cancel', { id }, uid);
    await ctx.reply(`Cancelling task ${id}.`);
  }

  private async onApprovals(ctx: Context, uid: string, user: ChannelUser): Promise<void> {
    const pending = await this.call('approvals.list', {}, uid);
    if (pending.length === 0) {
      await ctx.reply('No pending approvals.');
      return;
    }
    const canAnswer = this.allowed(user, 'approvals.answer');
    for (const a of pending) {
      const text = formatApproval(a, this.access.now());
      const msg = await ctx.reply(text, canAnswer ? { reply_markup: this.buttons(a.id) } : {});
      if (canAnswer) this.track(a.id, { chat: msg.chat.id, messageId: msg.message_id, text });
    }
  }

  private track(id: string, post: { chat: number; messageId: number; text: string }): void {
    const posts = this.announced.get(id) ?? [];
    posts.push(post);
    this.announced.set(id, posts);
  }

  /** Takes the buttons off a posted approval that is no longer pending. */
  private async retire(post: { chat: number; messageId: number; text: string }): Promise<void> {
    try {
      await this.bot.api.editMessageText(
        post.chat,
        post.messageId,
        clip(`${post.text}\n\n→ no longer pending (answered elsewhere or expired)`),
      );
    } catch (err) {
      this.logger.warn(`telegram: cannot update an approval message: ${CoworkError.from(err).message}`);
    }
  }

  private buttons(id: string): InlineKeyboard {
    return new InlineKeyboard().text('Approve', `ap:${id}:once`).text('Deny', `ap:${id}:deny`);
  }

  private async onButton(ctx: Context): Promise<void> {
    const uid = String(ctx.from!.id);
    const m = CALLBACK.exec(ctx.callbackQuery!.data ?? '');
    const user = this.access.lookup(uid);
    if (!m || !this.allowed(user, 'approvals.answer')) {
      this.access.refused(
        uid,
        m ? 'approval button pressed without the operator role' : 'unknown button data',
      );
      await ctx.answerCallbackQuery({ text: 'You cannot answer approvals.' });
      return;
    }
    const [, id, choice] = m;
    const kind = choice === 'once' ? 'approve-once' : 'deny';
    try {
      await this.call('approvals.answer', { id: id!, kind }, uid);
    } catch (err) {
      await ctx.answerCallbackQuery({ text: clip(CoworkError.from(err).message, 190) });
      return;
    }
    const pressed = ctx.callbackQuery?.message;
    if (pressed) {
      const rest = (this.announced.get(id!) ?? []).filter(
        (p) => !(p.chat === pressed.chat.id && p.messageId === pressed.message_id),
      );
      this.announced.set(id!, rest);
    }
    const who = ctx.from?.username ? `@${ctx.from.username}` : uid;
    await ctx.answerCallbackQuery({ text: kind === 'deny' ? 'Denied' : 'Approved' });
    const original =
      ctx.callbackQuery?.message && 'text' in ctx.callbackQuery.message ? ctx.callbackQuery.message.text : '';
    await ctx.editMessageText(
      clip(`${original ?? ''}\n\n→ ${kind === 'deny' ? 'Denied' : 'Approved'} by ${who}`),
    );
  }

  private onTimeline(event: unknown): void {
    const e = (event ?? {}) as { type?: unknown; taskId?: unknown; data?: unknown };
    if (e.type === 'approval.asked') void this.announceApprovals();
    if (typeof e.taskId !== 'string') return;
    const chat = this.taskChats.get(e.taskId);
    if (chat === undefined) return;
    const line = formatProgress(e);
    if (line) void this.send(chat, line);
    if (e.type === 'task.finished' || e.type === 'task.cancelled') this.taskChats.delete(e.taskId);
  }

  /** Posts each new pending approval once: to the chat its task came from and to every operator. */
  private async announceApprovals(): Promise<void> {
    let pending: PendingApproval[];
    try {
      pending = this.api.approvalsList();
    } catch {
      return;
    }
    const live = new Set(pending.map((a) => a.id));
    for (const [id, posts] of this.announced) {
      if (live.has(id)) continue;
      this.announced.delete(id);
      for (const post of posts) await this.retire(post);
    }
    const operators = this.access.notifiableUsers((r) => roleAllows(r, METHODS['approvals.answer'].minRole));
    for (const a of pending) {
      if (this.announced.has(a.id)) continue;
      this.announced.set(a.id, []);
      const chats = new Set<number>(operators.map(Number));
      const taskChat = a.taskId ? this.taskChats.get(a.taskId) : undefined;
      if (taskChat !== undefined) chats.add(taskChat);
      const text = formatApproval(a, this.access.now());
      for (const chat of chats) {
        const msg = await this.send(chat, text, this.buttons(a.id));
        if (msg) this.track(a.id, { chat, messageId: msg.message_id, text });
      }
    }
  }

  private async send(chatId: number, text: string, keyboard?: InlineKeyboard): Promise<Message | undefined> {
    try {
      return await this.bot.api.sendMessage(chatId, text, keyboard ? { reply_markup: keyboard } : {});
    } catch (err) {
      this.logger.warn(`telegram: cannot post to chat ${chatId}: ${CoworkError.from(err).message}`);
      return undefined;
    }
  }
}
