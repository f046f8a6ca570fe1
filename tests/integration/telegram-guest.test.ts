import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningController } from '../../src/host/sandbox/serve.js';
import { KeychainSecretStore } from '../../src/host/secrets/index.js';
import type { StoredEvent } from '../../src/host/timeline/events.js';
import { makeTestEnv, startTestSandbox, type TestSandboxEnv } from '../helpers/sandbox.js';
import { TelegramApiEmulator, type TgMessage, type TgUser } from '../helpers/telegram-api.js';

/**
 * An approval answered by a button press in Telegram reaches the
 * ApprovalBroker and the command then runs in a real guest. Everything is the real thing except
 * Telegram's servers: the controller is started by `startController` from a config file enabling
 * [channels.telegram] (allowlist mode, apiRoot → the local Bot API emulator), the bot token is
 * read from a real Secret Service (a private D-Bus session bus + gnome-keyring-daemon started
 * here, so no developer keychain is touched), and the command runs in a QEMU guest.
 * The channel has no exec command of its own, so the asked command comes through
 * controller.exec in the gateway context, as a remote control client's exec would.
 */

const TOKEN = '424242:guest-approval-TOKEN';
const alice: TgUser = { id: 4201, first_name: 'Alice', username: 'alice' };
const mallory: TgUser = { id: 6660, first_name: 'Mallory' };
const REMOTE = { id: 'device:remote-test', context: 'gateway' as const };

let keyringHome: string;
let bus: ChildProcess | undefined;
let keyring: ChildProcess | undefined;
let tg: TelegramApiEmulator;
let t: TestSandboxEnv;
let running: RunningController | undefined;
const savedBus = process.env.DBUS_SESSION_BUS_ADDRESS;

/** A private Secret Service: dbus-daemon + gnome-keyring-daemon with HOME in a temp folder. */
async function startSecretService(): Promise<string> {
  keyringHome = mkdtempSync(join(tmpdir(), 'tg-guest-keyring-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: keyringHome,
    XDG_DATA_HOME: join(keyringHome, '.local/share'),
    XDG_CONFIG_HOME: join(keyringHome, '.config'),
  };
  delete env.XDG_RUNTIME_DIR; // gnome-keyring then prints its environment once it owns the bus name
  bus = spawn('dbus-daemon', ['--session', '--nofork', '--print-address=1'], {
    env,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const address = await new Promise<string>((resolve, reject) => {
    bus!.once('error', reject);
    bus!.stdout?.once('data', (b: Buffer) => resolve(b.toString().trim()));
  });
  keyring = spawn('gnome-keyring-daemon', ['--unlock', '--components=secrets', '--foreground'], {
    env: { ...env, DBUS_SESSION_BUS_ADDRESS: address },
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  keyring.stdin?.end('test-keyring-password');
  await new Promise<void>((resolve, reject) => {
    keyring!.once('error', reject);
    keyring!.once('exit', (code) => reject(new Error(`gnome-keyring-daemon exited with ${code}`)));
    keyring!.stdout?.once('data', () => resolve());
  });
  return address;
}

/**
 * `cowork-vm secrets set telegram`, done through the same store the controller reads. The daemon
 * announces itself before its default collection exists, so the first writes may find none yet.
 */
async function storeToken(): Promise<void> {
  const store = new KeychainSecretStore();
  for (let attempt = 1; ; attempt++) {
    try {
      await store.set('telegram', TOKEN);
      return;
    } catch (err) {
      if (attempt >= 40) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

function timeline(): StoredEvent[] {
  return running!.controller.timelineQuery({ limit: 1000 }) as StoredEvent[];
}

/** The approval message for `fragment` that the bot posted to `user` with inline buttons. */
async function approvalMessage(user: TgUser, fragment: string): Promise<TgMessage> {
  return tg.waitFor(
    () => tg.sentTo(user.id).find((m) => m.reply_markup && m.text?.includes(fragment)),
    `an approval message mentioning ${fragment}`,
    60_000,
  );
}

function buttons(msg: TgMessage): { text: string; data: string }[] {
  return (msg.reply_markup?.inline_keyboard ?? [])
    .flat()
    .map((b) => ({ text: b.text, data: b.callback_data ?? '' }));
}

async function callbackAnswer(queryId: string): Promise<string | undefined> {
  const a = await tg.waitFor(
    () => tg.callbackAnswers.find((c) => c.callback_query_id === queryId),
    `the answer to callback query ${queryId}`,
  );
  return a.text;
}

beforeAll(async () => {
  const address = await startSecretService();
  // Read once per process by @napi-rs/keyring: set before the first keychain call.
  process.env.DBUS_SESSION_BUS_ADDRESS = address;
  await storeToken();

  tg = new TelegramApiEmulator(TOKEN);
  const apiRoot = await tg.start();
  t = makeTestEnv('tg-guest');
  const configFile = join(t.root, 'config.toml');
  writeFileSync(
    configFile,
    [
      '[channels.telegram]',
      'enabled = true',
      'mode = "allowlist"',
      `allowlist = [${alice.id}]`,
      `apiRoot = "${apiRoot}"`,
      '',
    ].join('\n'),
  );
  running = await startTestSandbox(t, { configFile });
  // The bot connected to the emulator with the token from the keychain.
  await tg.waitFor(() => tg.calls.includes('getUpdates'), 'the bot to start long polling');
});

afterAll(async () => {
  await running?.shutdown();
  await tg?.close();
  t?.cleanup();
  keyring?.kill();
  bus?.kill();
  if (savedBus === undefined) delete process.env.DBUS_SESSION_BUS_ADDRESS;
  else process.env.DBUS_SESSION_BUS_ADDRESS = savedBus;
  if (keyringHome) rmSync(keyringHome, { recursive: true, force: true });
});

describe('Telegram approvals against a real guest', () => {
  it('a stranger cannot press Approve; the allowlisted operator can, and the command then runs in the guest', async () => {
    const file = join(t.workspace, 'tg-approved.txt');
    const outcome = running!.controller.exec(
      { command: 'echo approved-from-telegram > /workspace/tg-approved.txt && id -un' },
      REMOTE,
    );

    const msg = await approvalMessage(alice, 'tg-approved.txt');
    const [pending] = running!.controller.approvalsList();
    expect(pending).toBeDefined();
    const id = pending!.id;
    expect(msg.text).toContain(id);
    expect(buttons(msg)).toEqual([
      { text: 'Approve', data: `ap:${id}:once` },
      { text: 'Deny', data: `ap:${id}:deny` },
    ]);
    // Only the allowlisted operator was told; the stranger got nothing.
    expect(tg.sentTo(mallory.id)).toEqual([]);

    // The attack: a user who is not on the allowlist presses Approve on the same message.
    const forged = tg.userPresses(mallory, msg, `ap:${id}:once`);
    expect(await callbackAnswer(forged)).toBe('You cannot answer approvals.');
    expect(running!.controller.approvalsList().map((a) => a.id)).toEqual([id]);
    expect(existsSync(file)).toBe(false);
    expect(timeline().some((e) => e.type === 'channel.refused' && e.data.user === String(mallory.id))).toBe(
      true,
    );

    const press = tg.userPresses(alice, msg, `ap:${id}:once`);
    const result = await outcome;
    expect(result.decision.effect).toBe('allow');
    expect(result.decision.reasons).toContain(`approved by telegram:${alice.id}`);
    expect(result.deniedReason).toBeUndefined();
    expect(result.result?.exitCode).toBe(0);
    expect(result.result?.stdout).toBe('agent\n'); // ran in the guest, as the guest's user
    expect(readFileSync(file, 'utf8')).toBe('approved-from-telegram\n');

    expect(await callbackAnswer(press)).toBe('Approved');
    await tg.waitFor(
      () => tg.edits.find((e) => e.message_id === msg.message_id && e.text.includes('Approved by @alice')),
      'the approval message to show who approved it',
    );
    const events = timeline();
    const asked = events.find(
      (e) => e.type === 'policy.decision' && e.data.command?.includes('tg-approved.txt'),
    );
    expect(asked?.data).toMatchObject({ effect: 'ask', context: 'gateway', origin: REMOTE.id });
    const answered = events.find((e) => e.type === 'approval.answered' && e.data.id === id);
    expect(answered?.data).toMatchObject({ id, verdict: 'approve-once', by: `telegram:${alice.id}` });
    const finished = events.find((e) => e.type === 'exec.finished' && e.id > answered!.id);
    expect(finished?.data).toMatchObject({ exitCode: 0 });
    expect(running!.controller.approvalsList()).toEqual([]);
  });

  it('Deny pressed in Telegram keeps the command out of the guest', async () => {
    const outcome = running!.controller.exec({ command: 'touch /workspace/tg-denied.txt' }, REMOTE);
    const msg = await approvalMessage(alice, 'tg-denied.txt');
    const id = buttons(msg)[1]!.data.split(':')[1]!;
    const press = tg.userPresses(alice, msg, `ap:${id}:deny`);
    const result = await outcome;
    expect(result.decision.effect).toBe('deny');
    expect(result.result).toBeUndefined();
    expect(result.deniedReason).toContain(`denied by telegram:${alice.id}`);
    expect(await callbackAnswer(press)).toBe('Denied');
    expect(existsSync(join(t.workspace, 'tg-denied.txt'))).toBe(false);
    const check = await running!.controller.exec(
      { command: 'test -e /workspace/tg-denied.txt' },
      {
        id: 'cli',
        context: 'local',
      },
    );
    expect(check.result?.exitCode).toBe(1);
    const answered = timeline().find((e) => e.type === 'approval.answered' && e.data.id === id);
    expect(answered?.data).toMatchObject({ verdict: 'deny', by: `telegram:${alice.id}` });
    expect(
      timeline().some(
        (e) => e.type === 'exec.started' && e.data.command === 'touch /workspace/tg-denied.txt',
      ),
    ).toBe(false);
  });
});
