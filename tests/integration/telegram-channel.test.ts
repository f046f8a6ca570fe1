import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ControllerApi, Origin } from '../../src/host/api/controller.js';
import type { PendingApproval, Verdict } from '../../src/host/approvals/types.js';
import {
  type ChannelSecurityInput,
  TelegramChannel,
  telegramChannelFromConfig,
} from '../../src/host/channels/index.js';
import { telegramSchema } from '../../src/host/config/schema.js';
import { ControlStore, type SecurityEvent } from '../../src/host/control/index.js';
import { CoworkError } from '../../src/host/errors.js';
import { TelegramApiEmulator, type TgUser } from '../helpers/telegram-api.js';

/** The seam, not the thing under test: records calls; approvals and events are set by the test. */
class RecordingApi implements ControllerApi {
  calls: { method: string; args: unknown[] }[] = [];
  pending: PendingApproval[] = [];
  private listeners = new Set<(e: unknown) => void>();
  emit(e: unknown) {
    for (const l of this.listeners) l(e);
  }
  async status() {
    this.calls.push({ method: 'status', args: [] });
    return {
      workspace: '/w',
      state: 'running' as const,
      pid: 1,
      vm: { driver: 'qemu', accel: 'tcg', share: '9p', image: 'base', cpus: 1, memoryMiB: 512 },
      pendingApprovals: this.pending.length,
      tasks: { running: 0 },
    };
  }
  async exec(): Promise<never> {
    throw new CoworkError('internal', 'the channel never calls exec');
  }
  approvalsList() {
    return this.pending;
  }
  approvalsAnswer(id: string, verdict: Omit<Verdict, 'by'>, origin: Origin) {
    this.calls.push({ method: 'approvalsAnswer', args: [id, verdict, origin] });
    if (!this.pending.some((p) => p.id === id))
      throw new CoworkError('invalidState', `approval ${id} was already answered`);
    this.pending = this.pending.filter((p) => p.id !== id);
  }
  tasksList() {
    return [];
  }
  tasksGet(id: string): never {
    throw new CoworkError('notFound', id);
  }
  async tasksStart(req: { prompt: string }, origin: Origin) {
    this.calls.push({ method: 'tasksStart', args: [req, origin] });
    return { id: 'task-1' };
  }
  tasksCancel(id: string, origin: Origin) {
    this.calls.push({ method: 'tasksCancel', args: [id, origin] });
  }
  timelineQuery() {
    return [];
  }
  timelineSubscribe(l: (e: unknown) => void) {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  async stop() {}
}

const alice: TgUser = { id: 4201, first_name: 'Alice', username: 'alice' };
const mallory: TgUser = { id: 6660, first_name: 'Mallory' };
const TOKEN = '123456:TEST-token';

let dir: string;
let store: ControlStore;
let api: RecordingApi;
let tg: TelegramApiEmulator;
let apiRoot: string;
let channel: TelegramChannel | undefined;
let events: SecurityEvent[];
let warnings: string[];
const clock = {
  t: Date.parse('2026-02-01T00:00:00Z'),
  now() {
    return this.t;
  },
};

async function startChannel(security: ChannelSecurityInput = {}) {
  channel = new TelegramChannel({
    api,
    store,
    token: TOKEN,
    apiRoot,
    security,
    clock,
    recorder: { record: (_t, e) => events.push(e) },
    logger: { warn: (m) => warnings.push(m) },
    approvalPollMs: 50,
  });
  await channel.start();
}

async function pairUser(user: TgUser, role: 'viewer' | 'operator' | 'admin') {
  const { code } = store.createPairingCode({ role });
  tg.userSends(user, `/pair ${code}`);
  await tg.waitFor(() => tg.sentTo(user.id).find((m) => m.text?.startsWith('Paired as')), 'pairing reply');
}

/** Sends and waits until the bot has processed it (it confirmed the update by polling again). */
async function say(user: TgUser, text: string, chat?: { id: number; type: 'group' }) {
  tg.userSends(user, text, chat);
  await tg.drained();
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cowork-tg-'));
  events = [];
  warnings = [];
  store = new ControlStore({
    file: join(dir, 'devices.sqlite'),
    clock,
    recorder: { record: (_t, e) => events.push(e) },
  });
  api = new RecordingApi();
  tg = new TelegramApiEmulator(TOKEN);
  apiRoot = await tg.start();
});

afterEach(async () => {
  await channel?.stop();
  channel = undefined;
  await tg.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('pairing mode (default)', () => {
  it('ignores a stranger completely, then serves them after /pair CODE', async () => {
    await startChannel();
    expect(tg.calls.slice(0, 2)).toEqual(['getMe', 'deleteWebhook']);
    await say(alice, '/status');
    await say(alice, '/run rm -rf /');
    await say(alice, 'hello?');
    expect(tg.sent).toEqual([]);
    expect(api.calls).toEqual([]);
    expect(events.filter((e) => e.type === 'channel.refused')).toHaveLength(3);

    await pairUser(alice, 'operator');
    expect(store.findChannelUser('telegram', String(alice.id))?.role).toBe('operator');
    await say(alice, '/status');
    expect(tg.sentTo(alice.id).at(-1)?.text).toMatch(/running — \/w/);
    await say(alice, '/run fix the build');
    expect(api.calls.at(-1)).toEqual({
      method: 'tasksStart',
      args: [{ prompt: 'fix the build' }, { id: `telegram:${alice.id}`, context: 'gateway' }],
    });
    expect(tg.sentTo(alice.id).at(-1)?.text).toMatch(/Started task task-1/);
  });

  it('refuses a wrong, reused or expired code and locks after 5 wrong codes', async () => {
    await startChannel();
    const { code } = store.createPairingCode({ role: 'viewer' });
    await say(alice, `/pair ${code}`);
    expect(tg.sentTo(alice.id).at(-1)?.text).toMatch(/Paired as viewer/);
    await say(mallory, `/pair ${code}`); // Alice's code is used up
    expect(tg.sentTo(mallory.id).at(-1)?.text).toBe('That code is not valid.');
    const late = store.createPairingCode({ role: 'viewer' });
    clock.t += 5 * 60_000;
    await say(mallory, `/pair ${late.code}`);
    expect(tg.sentTo(mallory.id).at(-1)?.text).toBe('That code is not valid.');
    for (let i = 0; i < 3; i++) await say(mallory, '/pair AAAAAA');
    expect(tg.sentTo(mallory.id).at(-1)?.text).toMatch(/locked for 15 minutes/);
    const good = store.createPairingCode({ role: 'admin' });
    await say(mallory, `/pair ${good.code}`);
    expect(tg.sentTo(mallory.id).at(-1)?.text).toMatch(/locked/);
    expect(store.findChannelUser('telegram', String(mallory.id))).toBeUndefined();
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'control.lockout', key: `pair:telegram:${mallory.id}` }),
    );
  });

  it('rotating user ids cannot out-guess the pairing budget: after 5 wrong codes from 5 users the right code is dead', async () => {
    await startChannel();
    const { code } = store.createPairingCode({ role: 'admin' });
    for (let i = 0; i < 5; i++) {
      const sock: TgUser = { id: 7000 + i, first_name: `sock${i}` };
      await say(sock, '/pair BBBBBB');
      expect(tg.sentTo(sock.id).at(-1)?.text).toBe('That code is not valid.');
    }
    const last: TgUser = { id: 7100, first_name: 'sock-last' };
    await say(last, `/pair ${code}`);
    expect(tg.sentTo(last.id).at(-1)?.text).toBe('That code is not valid.');
    expect(store.listDevices()).toEqual([]);
    // The owner's next code works at once: nobody is locked out by strangers' guesses.
    await pairUser(alice, 'operator');
  });

  it('rate limits /pair host-wide, whoever sends it', async () => {
    await startChannel();
    for (let i = 0; i < 10; i++) await say({ id: 7200 + i, first_name: 'x' }, '/pair CCCCCC');
    const eleventh: TgUser = { id: 7300, first_name: 'x' };
    await say(eleventh, '/pair CCCCCC');
    expect(tg.sentTo(eleventh.id).at(-1)?.text).toMatch(/Too many pairing attempts on this host/);
    clock.t += 60_000;
    await pairUser(alice, 'viewer');
  });

  it('stores display names without control or bidi characters, and falls back to the user id', async () => {
    await startChannel();
    const sneaky: TgUser = { id: 7400, first_name: 'Bob\u202Enimda\u200B\u001b[2J' };
    const invisible: TgUser = { id: 7401, first_name: '\u2066\u200B\u0007' };
    await pairUser(sneaky, 'viewer');
    await pairUser(invisible, 'viewer');
    expect(store.findChannelUser('telegram', '7400')?.name).toBe('Bobnimda[2J');
    expect(store.findChannelUser('telegram', '7401')?.name).toBe('7401');
  });

  it('refuses /pair in a group chat (the code would be shown to everyone)', async () => {
    await startChannel();
    const { code } = store.createPairingCode({ role: 'admin' });
    await say(mallory, `/pair ${code}`, { id: -100, type: 'group' });
    expect(tg.sentTo(-100).at(-1)?.text).toMatch(/private chat/);
    expect(store.findChannelUser('telegram', String(mallory.id))).toBeUndefined();
  });

  it('a viewer can read but not start tasks', async () => {
    await startChannel();
    await pairUser(alice, 'viewer');
    await say(alice, '/run something');
    expect(tg.sentTo(alice.id).at(-1)?.text).toMatch(/needs the operator role/);
    expect(api.calls.some((c) => c.method === 'tasksStart')).toBe(false);
  });

  it('a revoked user is a stranger again', async () => {
    await startChannel();
    await pairUser(alice, 'operator');
    store.revokeDevice(store.findChannelUser('telegram', String(alice.id))!.id, 'test');
    const before = tg.sent.length;
    await say(alice, '/status');
    expect(tg.sent.length).toBe(before);
  });

  it('a group chat works for a paired member, in the gateway context', async () => {
    await startChannel();
    await pairUser(alice, 'operator');
    await say(alice, '/run@cowork_test_bot tidy up', { id: -200, type: 'group' });
    expect(api.calls.at(-1)?.args[1]).toEqual({ id: `telegram:${alice.id}`, context: 'gateway' });
    await say(mallory, '/status', { id: -200, type: 'group' });
    await say(alice, '/status@some_other_bot', { id: -200, type: 'group' });
    expect(tg.sentTo(-200).map((m) => m.text)).toEqual([expect.stringMatching(/Started task/)]);
  });
});

describe('allowlist and open modes', () => {
  it('allowlist: only listed ids, and /pair is not available', async () => {
    await startChannel({ mode: 'allowlist', allowlist: [alice.id] });
    await say(alice, '/status');
    expect(tg.sentTo(alice.id)).toHaveLength(1);
    const { code } = store.createPairingCode({ role: 'admin' });
    await say(mallory, `/pair ${code}`);
    await say(mallory, '/status');
    expect(tg.sentTo(mallory.id)).toEqual([]);
    expect(store.findChannelUser('telegram', String(mallory.id))).toBeUndefined();
  });

  it('allowlist mode with an empty list is a config error', () => {
    expect(
      () => new TelegramChannel({ api, store, token: TOKEN, apiRoot, security: { mode: 'allowlist' } }),
    ).toThrow(expect.objectContaining({ code: 'invalidArgument' }));
  });

  it('open mode needs openConfirmed, warns at start, and gives strangers only the viewer role', async () => {
    expect(
      () => new TelegramChannel({ api, store, token: TOKEN, apiRoot, security: { mode: 'open' } }),
    ).toThrow(/openConfirmed/);
    await startChannel({ mode: 'open', openConfirmed: true });
    expect(warnings.some((w) => /OPEN mode/.test(w))).toBe(true);
    expect(events).toContainEqual({ type: 'channel.open_mode', channel: 'telegram' });
    await say(mallory, '/status');
    expect(tg.sentTo(mallory.id).at(-1)?.text).toMatch(/running/);
    await say(mallory, '/run x');
    expect(tg.sentTo(mallory.id).at(-1)?.text).toMatch(/needs the operator role/);
  });
});

describe('rate limit', () => {
  it('answers at most N messages per user per minute, then recovers', async () => {
    await startChannel({ rateLimitPerMinute: 3 });
    await pairUser(alice, 'viewer'); // 1 message
    for (let i = 0; i < 4; i++) await say(alice, '/status');
    expect(tg.sentTo(alice.id).filter((m) => m.text?.includes('running'))).toHaveLength(2);
    expect(events.filter((e) => e.type === 'channel.refused' && /rate limit/.test(e.reason))).toHaveLength(1);
    clock.t += 60_000;
    await say(alice, '/status');
    expect(tg.sentTo(alice.id).filter((m) => m.text?.includes('running'))).toHaveLength(3);
  });

  it('defaults to 30 per minute', async () => {
    await startChannel({ mode: 'allowlist', allowlist: [alice.id] });
    for (let i = 0; i < 31; i++) tg.userSends(alice, '/status');
    await tg.drained();
    await tg.waitFor(() => tg.sentTo(alice.id).length >= 30, '30 replies');
    await tg.drained();
    expect(tg.sentTo(alice.id)).toHaveLength(30);
  });
});

describe('approvals', () => {
  const approval = (id: string): PendingApproval => ({
    id,
    tool: 'shell',
    command: 'git push origin main',
    risk: 'network',
    context: 'gateway',
    reasons: ['git push needs approval'],
    createdAt: clock.t,
    expiresAt: clock.t + 5 * 60_000,
  });

  it('posts a new approval with buttons to operators; pressing Approve reaches approvalsAnswer', async () => {
    await startChannel();
    await pairUser(alice, 'operator');
    api.pending = [approval('a7k2')];
    const msg = await tg.waitFor(
      () => tg.sentTo(alice.id).find((m) => m.text?.includes('a7k2')),
      'approval message',
    );
    expect(msg.text).toMatch(/\$ git push origin main/);
    const buttons = msg.reply_markup!.inline_keyboard.flat();
    expect(buttons.map((b) => b.text)).toEqual(['Approve', 'Deny']);
    tg.userPresses(alice, msg, buttons[0]!.callback_data!);
    await tg.drained();
    expect(api.calls.filter((c) => c.method === 'approvalsAnswer')).toEqual([
      {
        method: 'approvalsAnswer',
        args: ['a7k2', { kind: 'approve-once' }, { id: `telegram:${alice.id}`, context: 'gateway' }],
      },
    ]);
    expect(tg.callbackAnswers.at(-1)?.text).toBe('Approved');
    expect(tg.edits.at(-1)?.text).toMatch(/Approved by @alice/);
    // Announced once only.
    await new Promise((r) => setTimeout(r, 150));
    expect(tg.sentTo(alice.id).filter((m) => m.text?.includes('a7k2'))).toHaveLength(1);
  });

  it('Deny answers deny; a second press reports the broker error', async () => {
    await startChannel();
    await pairUser(alice, 'operator');
    api.pending = [approval('b1')];
    await say(alice, '/approvals');
    const msg = tg.sentTo(alice.id).find((m) => m.text?.includes('b1'))!;
    tg.userPresses(alice, msg, 'ap:b1:deny');
    await tg.drained();
    expect(api.calls.at(-1)?.args[1]).toEqual({ kind: 'deny' });
    tg.userPresses(alice, msg, 'ap:b1:once');
    await tg.drained();
    expect(tg.callbackAnswers.at(-1)?.text).toMatch(/already answered/);
  });

  it('a viewer or stranger pressing a button (e.g. in a shared group) cannot answer', async () => {
    await startChannel();
    await pairUser(alice, 'viewer');
    api.pending = [approval('c3')];
    await say(alice, '/approvals');
    const msg = tg.sentTo(alice.id).find((m) => m.text?.includes('c3'))!;
    tg.userPresses(alice, msg, 'ap:c3:once');
    tg.userPresses(mallory, msg, 'ap:c3:once');
    tg.userPresses(alice, msg, 'ap:c3:once:extra');
    await tg.drained();
    expect(api.calls.some((c) => c.method === 'approvalsAnswer')).toBe(false);
    expect(tg.callbackAnswers.map((a) => a.text)).toEqual(Array(3).fill('You cannot answer approvals.'));
  });

  it('takes the buttons off when the approval is answered elsewhere; viewers get no buttons', async () => {
    await startChannel();
    await pairUser(alice, 'operator');
    await pairUser(mallory, 'viewer');
    api.pending = [approval('d4')];
    const msg = await tg.waitFor(
      () => tg.sentTo(alice.id).find((m) => m.text?.includes('d4')),
      'approval message',
    );
    await say(mallory, '/approvals');
    const viewerCopy = tg.sentTo(mallory.id).find((m) => m.text?.includes('d4'))!;
    expect(viewerCopy.reply_markup).toBeUndefined();
    api.pending = []; // answered at the terminal
    const edit = await tg.waitFor(
      () => tg.edits.find((e) => e.message_id === msg.message_id),
      'retired message',
    );
    expect(edit.text).toMatch(/no longer pending/);
  });

  it('posts progress and the result of a task started from a chat, and /cancel cancels it', async () => {
    await startChannel();
    await pairUser(alice, 'operator');
    await say(alice, '/run build it');
    api.emit({ id: 1, ts: 0, taskId: 'task-1', type: 'exec.started', data: { command: 'make' } });
    api.emit({ id: 2, ts: 0, taskId: 'other', type: 'exec.started', data: { command: 'secret' } });
    await tg.waitFor(() => tg.sentTo(alice.id).find((m) => m.text?.includes('$ make')), 'progress line');
    await say(alice, '/cancel');
    expect(api.calls.at(-1)).toEqual({
      method: 'tasksCancel',
      args: ['task-1', { id: `telegram:${alice.id}`, context: 'gateway' }],
    });
    api.emit({
      id: 3,
      ts: 0,
      taskId: 'task-1',
      type: 'task.finished',
      data: { outcome: 'completed', summary: 'all green' },
    });
    await tg.waitFor(() => tg.sentTo(alice.id).find((m) => m.text?.includes('all green')), 'result');
    expect(tg.sent.some((m) => m.text?.includes('secret'))).toBe(false);
  });
});

describe('startup', () => {
  it('fails closed with a clear error when the bot token is rejected', async () => {
    const bad = new TelegramChannel({
      api,
      store,
      token: '1:wrong',
      apiRoot,
      logger: { warn: (m) => warnings.push(m) },
    });
    await expect(bad.start()).rejects.toMatchObject({ code: 'unavailable' });
    await bad.stop();
  });

  it('refuses to construct without a token', () => {
    expect(() => new TelegramChannel({ api, store, token: '', apiRoot })).toThrow(/secrets set telegram/);
  });
});

describe('from config', () => {
  it('is off unless enabled, and honours apiRoot and allowlist from [channels.telegram]', async () => {
    expect(telegramChannelFromConfig(telegramSchema.parse({}), { api, store, token: TOKEN })).toBeUndefined();
    const cfg = telegramSchema.parse({
      enabled: true,
      mode: 'allowlist',
      allowlist: [alice.id],
      apiRoot: `${apiRoot}/`,
    });
    channel = telegramChannelFromConfig(cfg, { api, store, token: TOKEN })!;
    await channel.start();
    await say(alice, '/status');
    await say(mallory, '/status');
    expect(tg.sent.map((m) => m.chat.id)).toEqual([alice.id]);
  });
});
