import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitFor } from './wait.js';

/**
 * A local stand-in for Telegram's Bot API (https://core.telegram.org/bots/api), speaking its
 * wire protocol: POST /bot<token>/<method> with a JSON body, answers `{ ok: true, result }` or
 * `{ ok: false, error_code, description }`. Implements what the channel uses: getMe,
 * deleteWebhook, getUpdates (long polling with offset confirmation), sendMessage,
 * editMessageText, answerCallbackQuery. Tests drive it by pushing updates as users would.
 */

export interface TgUser {
  id: number;
  is_bot?: boolean;
  first_name: string;
  username?: string;
}

export interface TgChat {
  id: number;
  type: 'private' | 'group' | 'supergroup';
  title?: string;
}

export interface TgMessage {
  message_id: number;
  date: number;
  chat: TgChat;
  from?: TgUser;
  text?: string;
  reply_markup?: { inline_keyboard: { text: string; callback_data?: string }[][] };
  entities?: { type: string; offset: number; length: number }[];
}

interface Update {
  update_id: number;
  message?: TgMessage;
  callback_query?: { id: string; from: TgUser; message?: TgMessage; chat_instance: string; data?: string };
}

export class TelegramApiEmulator {
  readonly bot: TgUser = { id: 999000, is_bot: true, first_name: 'Cowork', username: 'cowork_test_bot' };
  /** Every message the bot sent (sendMessage), in order. */
  readonly sent: TgMessage[] = [];
  readonly edits: { chat_id: number; message_id: number; text: string }[] = [];
  readonly callbackAnswers: { callback_query_id: string; text?: string }[] = [];
  /** Every API call, method names in order (for asserting what the bot did). */
  readonly calls: string[] = [];
  private readonly server: Server;
  private readonly updates: Update[] = [];
  private readonly messages = new Map<string, TgMessage>();
  private readonly openQueries = new Set<string>();
  private waiters: (() => void)[] = [];
  private nextUpdateId = 1;
  private nextMessageId = 1;
  private nextQueryId = 1;
  private confirmedOffset = 0;

  constructor(readonly token: string) {
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  async start(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const w of this.waiters) w();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** A user sends a text message (private chat with the user unless `chat` is given). */
  userSends(from: TgUser, text: string, chat?: TgChat): TgMessage {
    const message: TgMessage = {
      message_id: this.nextMessageId++,
      date: Math.floor(Date.now() / 1000),
      chat: chat ?? { id: from.id, type: 'private' },
      from: { is_bot: false, ...from },
      text,
      ...(text.startsWith('/')
        ? { entities: [{ type: 'bot_command', offset: 0, length: text.split(/\s/)[0]!.length }] }
        : {}),
    };
    this.push({ update_id: this.nextUpdateId++, message });
    return message;
  }

  /** A user presses an inline button under a message the bot sent. */
  userPresses(from: TgUser, message: TgMessage, data: string): string {
    const id = String(this.nextQueryId++);
    this.openQueries.add(id);
    this.push({
      update_id: this.nextUpdateId++,
      callback_query: {
        id,
        from: { is_bot: false, ...from },
        message,
        chat_instance: String(message.chat.id),
        data,
      },
    });
    return id;
  }

  /** Updates the bot has not confirmed yet (getUpdates with a higher offset confirms). */
  get unconfirmed(): number {
    return this.updates.filter((u) => u.update_id >= this.confirmedOffset).length;
  }

  sentTo(chatId: number): TgMessage[] {
    return this.sent.filter((m) => m.chat.id === chatId);
  }

  /** Resolves when `check` returns a value; a timeout lists the bot's API calls so far. */
  waitFor<T>(check: () => T | undefined | false, what: string, timeoutMs = 10_000): Promise<T> {
    return waitFor(check, what, {
      timeoutMs,
      intervalMs: 20,
      detail: () => `bot calls: ${this.calls.join(', ')}`,
    });
  }

  /** Resolves once the bot has fetched (and so processed the previous batch of) every pushed update. */
  async drained(timeoutMs = 10_000): Promise<void> {
    await this.waitFor(() => this.unconfirmed === 0, 'the bot to confirm every update', timeoutMs);
  }

  private push(u: Update): void {
    this.updates.push(u);
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const m = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(req.url ?? '');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const reply = (status: number, body: object) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (!m) return reply(404, { ok: false, error_code: 404, description: 'Not Found' });
    if (m[1] !== this.token) return reply(401, { ok: false, error_code: 401, description: 'Unauthorized' });
    let params: Record<string, unknown> = {};
    const raw = Buffer.concat(chunks).toString('utf8');
    if (raw) {
      try {
        params = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        return reply(400, { ok: false, error_code: 400, description: 'Bad Request: invalid JSON' });
      }
    }
    const method = m[2]!;
    this.calls.push(method);
    const ok = (result: unknown) => reply(200, { ok: true, result });
    const bad = (d: string) => reply(400, { ok: false, error_code: 400, description: `Bad Request: ${d}` });
    switch (method) {
      case 'getMe':
        return ok({
          ...this.bot,
          can_join_groups: true,
          can_read_all_group_messages: false,
          supports_inline_queries: false,
        });
      case 'deleteWebhook':
      case 'setMyCommands':
        return ok(true);
      case 'getUpdates':
        return ok(await this.getUpdates(params, req));
      case 'sendMessage': {
        const chatId = Number(params.chat_id);
        const text = typeof params.text === 'string' ? params.text : '';
        if (!Number.isFinite(chatId)) return bad('chat not found');
        if (text.trim() === '') return bad('message text is empty');
        if (text.length > 4096) return bad('message is too long');
        const msg: TgMessage = {
          message_id: this.nextMessageId++,
          date: Math.floor(Date.now() / 1000),
          chat: { id: chatId, type: chatId > 0 ? 'private' : 'group' },
          from: this.bot,
          text,
          ...(params.reply_markup ? { reply_markup: params.reply_markup as TgMessage['reply_markup'] } : {}),
        };
        this.sent.push(msg);
        this.messages.set(`${chatId}:${msg.message_id}`, msg);
        return ok(msg);
      }
      case 'editMessageText': {
        const key = `${Number(params.chat_id)}:${Number(params.message_id)}`;
        const msg = this.messages.get(key);
        if (!msg) return bad('message to edit not found');
        if (typeof params.text !== 'string' || params.text.trim() === '') return bad('message text is empty');
        const edited = {
          ...msg,
          text: params.text,
          reply_markup: params.reply_markup as TgMessage['reply_markup'],
        };
        this.messages.set(key, edited);
        this.edits.push({ chat_id: msg.chat.id, message_id: msg.message_id, text: params.text });
        return ok(edited);
      }
      case 'answerCallbackQuery': {
        const id = String(params.callback_query_id);
        if (!this.openQueries.delete(id)) {
          return bad('query is too old and response timeout expired or query ID is invalid');
        }
        this.callbackAnswers.push({
          callback_query_id: id,
          ...(typeof params.text === 'string' ? { text: params.text } : {}),
        });
        return ok(true);
      }
      default:
        return reply(404, { ok: false, error_code: 404, description: 'Not Found: method not found' });
    }
  }

  /** Long polling as Telegram does it: confirm below `offset`, answer at once if anything is pending, else wait. */
  private async getUpdates(params: Record<string, unknown>, req: IncomingMessage): Promise<Update[]> {
    const offset = Number(params.offset ?? 0);
    if (offset > 0) {
      this.confirmedOffset = Math.max(this.confirmedOffset, offset);
      while (this.updates.length && this.updates[0]!.update_id < offset) this.updates.shift();
    }
    const limit = Math.min(Number(params.limit ?? 100), 100);
    const timeoutS = Math.min(Number(params.timeout ?? 0), 50);
    if (this.updates.length === 0 && timeoutS > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, timeoutS * 1000);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.push(done);
        req.socket.once('close', done);
      });
    }
    return this.updates.slice(0, limit);
  }
}
