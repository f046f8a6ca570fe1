import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Origin } from '../../src/host/api/controller.js';
import { MemoryApprovalBroker } from '../../src/host/approvals/index.js';
import { defaultConfig } from '../../src/host/config/index.js';
import { verifyAuthHmac } from '../../src/host/control/auth.js';
import {
  AUTH_FAILED_MESSAGE,
  CLOSE_CODES,
  ControlServer,
  ControlStore,
} from '../../src/host/control/index.js';
import { menuModelSchema } from '../../src/host/menu/model.js';
import { createPolicyEngine } from '../../src/host/policy/index.js';
import { Controller } from '../../src/host/sandbox/controller.js';
import type { Sandbox } from '../../src/host/sandbox/sandbox.js';
import { TaskScopes } from '../../src/host/sandbox/task-scope.js';
import type { ExecResult } from '../../src/host/ssh/types.js';
import { Timeline } from '../../src/host/timeline/index.js';
import { waitFor } from '../helpers/wait.js';
import { execResult } from './agent-test-context.js';

/**
 * The Swift client's handshake, proven against the real server. The Swift code cannot run here,
 * so MenubarSteps below does what native/menubar/Sources/CoworkMenubarCore/ControlClient.swift
 * and DeviceAuth.swift do, step by step and byte by byte (base64url → standard alphabet +
 * padding → strict decode; HMAC-SHA256 over UTF-8(nonce) ‖ UTF-8(serverId); lowercase hex; `m<n>`
 * request ids), against a real ControlServer on loopback in front of a real Controller (its
 * policy engine, approval broker and timeline; only the guest is left out).
 */

const SWIFT = new URL('../../native/menubar/', import.meta.url).pathname;

// ---- DeviceAuth.swift, in TypeScript --------------------------------------------------------

/** DeviceAuth.decodeBase64URL: translate the alphabet, pad, then decode as Foundation does (strictly). */
function swiftDecodeBase64URL(text: string): Buffer | undefined {
  let b64 = text.replaceAll('-', '+').replaceAll('_', '/');
  while (b64.length % 4 !== 0) b64 += '=';
  // Data(base64Encoded:) refuses anything outside the standard alphabet or with bad padding.
  if (!/^[A-Za-z0-9+/]*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(b64)) return undefined;
  return Buffer.from(b64, 'base64');
}

/** DeviceAuth.deviceKey(fromBase64URL:): 32 bytes or refused. */
function swiftDeviceKey(text: string): Buffer {
  const key = swiftDecodeBase64URL(text);
  if (key?.length !== 32) throw new Error('the device key is not base64url of 32 bytes; pair again');
  return key;
}

/** DeviceAuth.signedBytes: UTF-8(nonce) followed by UTF-8(serverId), nothing between. */
const swiftSignedBytes = (nonce: string, serverId: string) =>
  Buffer.concat([Buffer.from(nonce, 'utf8'), Buffer.from(serverId, 'utf8')]);

/** DeviceAuth.answer: HMAC-SHA256 of the signed bytes, 64 lowercase hex digits. */
const swiftAnswer = (key: Buffer, signed: Buffer) => createHmac('sha256', key).update(signed).digest('hex');

// ---- ControlClient.swift's steps ------------------------------------------------------------

interface Frame {
  type: string;
  [k: string]: unknown;
}

/** One connection, driven the way ControlClient.swift drives it. */
class MenubarSteps {
  private frames: Frame[] = [];
  private waiters: (() => void)[] = [];
  private lastRequestId = 0;
  readonly events: Frame[] = [];
  closed: { code: number; reason: string } | undefined;
  challenge!: { version: number; nonce: string; serverId: string; expiresInMs: number };

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) throw new Error('the server sent a binary frame');
      const frame = JSON.parse(data.toString()) as Frame;
      if (frame.type === 'event') this.events.push(frame);
      else this.frames.push(frame);
      for (const w of this.waiters.splice(0)) w();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** connect(to:) + readChallenge(): no Origin header (URLSessionWebSocketTask sends none); the first frame must be the challenge. */
  static async connect(url: string, origin?: string): Promise<MenubarSteps> {
    const ws = new WebSocket(url, origin ? { origin } : {});
    const steps = new MenubarSteps(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const first = await steps.next();
    if (first.type !== 'challenge') throw new Error(`did not start with a challenge: ${first.type}`);
    if (first.version !== 1) throw new Error(`protocol ${first.version}`);
    steps.challenge = first as unknown as MenubarSteps['challenge'];
    return steps;
  }

  /** The next non-event frame (what nextHandshakeFrame reads before authentication). */
  async next(): Promise<Frame> {
    await waitFor(() => this.frames.length > 0 || this.closed !== undefined, 'a frame from the server');
    const f = this.frames.shift();
    if (!f) throw new Error(`connection closed (${this.closed?.code} ${this.closed?.reason})`);
    return f;
  }

  private send(frame: object): void {
    this.ws.send(JSON.stringify(frame));
  }

  /** pair(code:name:): PairFrame, then `paired` whose serverId is the challenge's and whose key is 32 bytes. */
  async pair(code: string, name: string) {
    this.send({ type: 'pair', code, name });
    const f = await this.next();
    if (f.type !== 'paired') throw new Error(`while pairing: ${JSON.stringify(f)}`);
    if (f.serverId !== this.challenge.serverId) throw new Error('paired names another server');
    swiftDeviceKey(f.deviceKey as string);
    return {
      deviceId: f.deviceId as string,
      deviceKey: f.deviceKey as string,
      serverId: f.serverId as string,
      role: f.role as string,
    };
  }

  /** authenticate(_:): AuthFrame for this connection's challenge, signed over `signed` (default: the documented bytes). */
  async authenticate(
    creds: { deviceId: string; deviceKey: string; serverId: string },
    signed = swiftSignedBytes(this.challenge.nonce, this.challenge.serverId),
  ): Promise<Frame> {
    if (creds.serverId !== this.challenge.serverId) throw new Error('credentials of another server');
    const hmac = swiftAnswer(swiftDeviceKey(creds.deviceKey), signed);
    this.send({ type: 'auth', deviceId: creds.deviceId, nonce: this.challenge.nonce, hmac });
    return await this.next();
  }

  /** call(_:): a `req` frame with id m<n>; the `res` with the same id answers it. */
  async call(method: string, params: object = {}): Promise<unknown> {
    this.lastRequestId += 1;
    const id = `m${this.lastRequestId}`;
    this.send({ type: 'req', id, method, params });
    await waitFor(
      () => this.frames.some((f) => f.type === 'res' && f.id === id) || this.closed !== undefined,
      `the answer to ${method}`,
    );
    const at = this.frames.findIndex((f) => f.type === 'res' && f.id === id);
    if (at < 0) throw new Error(`closed before answering ${method}`);
    const [res] = this.frames.splice(at, 1);
    if (res!.ok !== true) throw new Error(`${method}: ${JSON.stringify(res!.error)}`);
    return res!.result;
  }

  close(): void {
    this.ws.close(1000, 'client done');
  }
}

// ---- the vector of DeviceAuthTests.swift ----------------------------------------------------

describe('the HMAC answer as DeviceAuth.swift computes it', () => {
  const tests = readFileSync(join(SWIFT, 'Tests/CoworkMenubarCoreTests/DeviceAuthTests.swift'), 'utf8');
  const vector = (name: string) => {
    const v = new RegExp(`static let ${name} = "([^"]+)"`).exec(tests)?.[1];
    if (!v) throw new Error(`DeviceAuthTests.swift has no ${name}`);
    return v;
  };
  const key = vector('vectorKey');
  const nonce = vector('vectorNonce');
  const serverId = vector('vectorServerId');
  const expected = vector('vectorExpected');

  it("the Swift tests' vector is what the server's verifier accepts", () => {
    expect(key).toMatch(/-/);
    expect(key).toMatch(/_/);
    const bytes = swiftDeviceKey(key);
    expect(swiftAnswer(bytes, swiftSignedBytes(nonce, serverId))).toBe(expected);
    expect(verifyAuthHmac(bytes, nonce, serverId, expected)).toBe(true);
    // The same key read without the alphabet translation would not even decode in Foundation.
    expect(/^[A-Za-z0-9+/=]*$/.test(key)).toBe(false);
  });

  it('the documented byte string is the one signed: another order or a separator is refused', () => {
    const bytes = swiftDeviceKey(key);
    const swapped = swiftAnswer(bytes, swiftSignedBytes(serverId, nonce));
    const separated = swiftAnswer(bytes, Buffer.from(`${nonce}:${serverId}`, 'utf8'));
    expect(verifyAuthHmac(bytes, nonce, serverId, swapped)).toBe(false);
    expect(verifyAuthHmac(bytes, nonce, serverId, separated)).toBe(false);
  });

  it('DeviceAuth.swift states the same byte string in its doc comment', () => {
    const source = readFileSync(join(SWIFT, 'Sources/CoworkMenubarCore/DeviceAuth.swift'), 'utf8');
    expect(source).toContain('exactly UTF-8(nonce) followed by UTF-8(serverId)');
    expect(source).toMatch(
      /var bytes = Data\(nonce\.utf8\)\s+bytes\.append\(contentsOf: Array\(serverId\.utf8\)\)/,
    );
    expect(source).toMatch(
      /HMAC<SHA256>\.authenticationCode\(\s*for: signedBytes\(nonce: nonce, serverId: serverId\)/,
    );
    expect(source).toContain('String(format: "%02x", $0)');
  });
});

// ---- against the real server ----------------------------------------------------------------

function fakeSandbox(ran: string[]): Sandbox {
  return {
    info: { accel: 'tcg', share: '9p', image: 'base', imageHash: 'h', bootMs: 1, startedAt: '' },
    exec: async (command: string): Promise<ExecResult> => {
      ran.push(command);
      return execResult();
    },
  } as unknown as Sandbox;
}

describe('the Swift client steps against a real ControlServer and Controller', () => {
  const dirs: string[] = [];
  const ran: string[] = [];
  let timeline: Timeline;
  let store: ControlStore;
  let controller: Controller;
  let server: ControlServer;
  let url: string;
  let creds: Awaited<ReturnType<MenubarSteps['pair']>>;
  const open: MenubarSteps[] = [];
  const tmp = (p: string) => {
    const d = mkdtempSync(join(tmpdir(), p));
    dirs.push(d);
    return d;
  };

  beforeAll(async () => {
    timeline = Timeline.open(join(tmp('menubar-tl-'), 'timeline.db'));
    store = new ControlStore({ file: join(tmp('menubar-ctl-'), 'devices.sqlite'), recorder: timeline });
    controller = new Controller({
      workspace: tmp('menubar-ws-'),
      stateDir: tmp('menubar-st-'),
      sandbox: fakeSandbox(ran),
      policy: createPolicyEngine(defaultConfig()),
      approvals: new MemoryApprovalBroker({ timeline }),
      timeline,
      approvalTimeoutMs: 60_000,
      vmSpec: { driver: 'qemu', cpus: 1, memoryMiB: 512 },
      scopes: new TaskScopes(),
    });
    server = new ControlServer({
      api: controller,
      store,
      listen: { host: '127.0.0.1', port: 0 },
      recorder: timeline,
    });
    url = (await server.start()).url;
  });

  afterAll(async () => {
    for (const c of open) c.close();
    await server.close();
    store.close();
    timeline.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const connect = async (origin?: string) => {
    const c = await MenubarSteps.connect(url, origin);
    open.push(c);
    return c;
  };

  it('`CoworkMenubar pair`: pair with a one-time code, then answer the same challenge with the new key', async () => {
    const { code } = store.createPairingCode({ role: 'operator' });
    const c = await connect();
    creds = await c.pair(code, 'menubar on test-mac');
    expect(creds.role).toBe('operator');
    const ok = await c.authenticate(creds);
    expect(ok).toEqual({
      type: 'auth-ok',
      deviceId: creds.deviceId,
      name: 'menubar on test-mac',
      role: 'operator',
    });
    c.close();
  });

  it('run mode: a new connection authenticates with the stored key and subscribes to the timeline', async () => {
    const c = await connect();
    expect((await c.authenticate(creds)).type).toBe('auth-ok');
    // The session layer answers { subscribed } (the contract's result is the subscription itself).
    expect(await c.call('timeline.subscribe')).toEqual({ subscribed: true });
    c.close();
  });

  it("if URLSession ever sent an Origin, it would be the server's own loopback origin, which is allowed", async () => {
    const c = await connect(url.replace(/^ws:/, 'http:'));
    expect((await c.authenticate(creds)).type).toBe('auth-ok');
    c.close();
  });

  it(`fetches the menu (menu.get), gets an event for a new approval, answers it, and the command runs`, async () => {
    const c = await connect();
    await c.authenticate(creds);
    await c.call('timeline.subscribe');
    const menu = menuModelSchema.parse(await c.call('menu.get'));
    expect(menu.status).toMatchObject({ state: 'running', pendingApprovals: 0 });
    expect(await c.call('approvals.list')).toEqual([]);

    const agent: Origin = { id: 'test-agent', context: 'agent' };
    const pending = controller.exec({ command: 'touch built' }, agent);
    // The Swift session re-fetches on every timeline event; this one is the ask.
    await waitFor(
      () => c.events.some((e) => (e.data as { type?: string }).type === 'approval.asked'),
      'approval.asked',
    );
    const approvals = (await c.call('approvals.list')) as { id: string; command?: string }[];
    expect(approvals.map((a) => a.command)).toEqual(['touch built']);
    expect(await c.call('approvals.answer', { id: approvals[0]!.id, kind: 'approve-once' })).toEqual({
      answered: approvals[0]!.id,
      kind: 'approve-once',
    });
    expect((await pending).result?.exitCode).toBe(0);
    expect(ran).toEqual(['touch built']);
    await waitFor(
      () => c.events.some((e) => (e.data as { type?: string }).type === 'approval.answered'),
      'approval.answered (the notification is removed on it)',
    );
    expect(await c.call('approvals.list')).toEqual([]);
    c.close();
  });

  it('an answer over the bytes in another order is refused with 4001 and the one failure message', async () => {
    const c = await connect();
    const swapped = swiftSignedBytes(c.challenge.serverId, c.challenge.nonce);
    const f = await c.authenticate(creds, swapped);
    expect(f).toEqual({ type: 'error', error: { code: 'denied', message: AUTH_FAILED_MESSAGE } });
    await waitFor(() => c.closed !== undefined, 'the server closes the connection');
    expect(c.closed?.code).toBe(CLOSE_CODES.authFailed);
  });

  it('an operator device is refused stop (the menubar shows the error, nothing stops)', async () => {
    const c = await connect();
    await c.authenticate(creds);
    await expect(c.call('stop')).rejects.toThrow(/needs role 'admin'/);
    expect(controller.approvalsList()).toEqual([]);
    c.close();
  });
});
