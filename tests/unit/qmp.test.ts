import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import { QmpClient, type QmpEvent } from '../../src/host/vm/qemu/qmp.js';

/**
 * A local unix-socket server speaking QMP's JSON-lines wire protocol the way QEMU does:
 * greeting first, commands refused until qmp_capabilities, replies echo the id.
 */
class FakeQmpServer {
  readonly received: Record<string, unknown>[] = [];
  readonly sockets: Socket[] = [];
  private server: Server;
  /** How to answer each command; default: {"return":{}}. */
  handler: (msg: Record<string, unknown>, sock: Socket) => void = (msg, sock) =>
    this.reply(sock, { return: {}, id: msg.id });

  constructor(
    readonly path: string,
    private readonly greet = true,
  ) {
    this.server = createServer((sock) => {
      this.sockets.push(sock);
      let negotiated = false;
      let buf = '';
      if (this.greet) this.reply(sock, { QMP: { version: { qemu: { major: 7 } }, capabilities: ['oob'] } });
      sock.on('data', (d) => {
        buf += d.toString();
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const msg = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
          buf = buf.slice(nl + 1);
          this.received.push(msg);
          if (msg.execute === 'qmp_capabilities') {
            negotiated = true;
            this.reply(sock, { return: {}, id: msg.id });
          } else if (!negotiated) {
            this.reply(sock, {
              error: { class: 'CommandNotFound', desc: 'Expecting capabilities negotiation' },
              id: msg.id,
            });
          } else this.handler(msg, sock);
        }
      });
      sock.on('error', () => {});
    });
  }

  reply(sock: Socket, obj: unknown): void {
    sock.write(`${JSON.stringify(obj)}\r\n`);
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.path, resolve));
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

let dir: string;
let server: FakeQmpServer | undefined;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'qmp-test-'));
});

afterEach(async () => {
  await server?.close();
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

async function start(greet = true): Promise<FakeQmpServer> {
  server = new FakeQmpServer(join(dir, 'qmp.sock'), greet);
  await server.listen();
  return server;
}

describe('QmpClient', () => {
  it('reads the greeting, negotiates capabilities first, then executes with ids and arguments', async () => {
    const s = await start();
    s.handler = (msg, sock) => {
      if (msg.execute === 'query-status')
        s.reply(sock, { return: { status: 'running', running: true }, id: msg.id });
      else s.reply(sock, { return: { echoed: msg.arguments }, id: msg.id });
    };
    const qmp = await QmpClient.connect(s.path);
    expect(qmp.greeting?.QMP.capabilities).toEqual(['oob']);
    expect(await qmp.execute('query-status')).toEqual({ status: 'running', running: true });
    expect(await qmp.execute('human-monitor-command', { 'command-line': 'info' })).toEqual({
      echoed: { 'command-line': 'info' },
    });
    expect(s.received[0]?.execute).toBe('qmp_capabilities');
    const ids = s.received.map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
    qmp.close();
  });

  it('matches replies to requests by id even when they arrive out of order', async () => {
    const s = await start();
    const held: { msg: Record<string, unknown>; sock: Socket }[] = [];
    s.handler = (msg, sock) => {
      held.push({ msg, sock });
      if (held.length === 2) {
        for (const h of [...held].reverse()) s.reply(h.sock, { return: h.msg.execute, id: h.msg.id });
      }
    };
    const qmp = await QmpClient.connect(s.path);
    const [a, b] = await Promise.all([qmp.execute('first'), qmp.execute('second')]);
    expect([a, b]).toEqual(['first', 'second']);
    qmp.close();
  });

  it('turns a QMP error reply into a CoworkError naming the command and class', async () => {
    const s = await start();
    s.handler = (msg, sock) =>
      s.reply(sock, { error: { class: 'GenericError', desc: 'No such device' }, id: msg.id });
    const qmp = await QmpClient.connect(s.path);
    await expect(qmp.execute('device_del', { id: 'x' })).rejects.toThrow(
      /QMP device_del failed: GenericError: No such device/,
    );
    qmp.close();
  });

  it('delivers asynchronous events interleaved with replies', async () => {
    const s = await start();
    s.handler = (msg, sock) => {
      s.reply(sock, { event: 'POWERDOWN', timestamp: { seconds: 1, microseconds: 2 } });
      s.reply(sock, { return: {}, id: msg.id });
      s.reply(sock, { event: 'SHUTDOWN', data: { guest: true, reason: 'guest-shutdown' } });
    };
    const qmp = await QmpClient.connect(s.path);
    const events: QmpEvent[] = [];
    const gotShutdown = new Promise<void>((resolve) =>
      qmp.on('event', (e: QmpEvent) => {
        events.push(e);
        if (e.event === 'SHUTDOWN') resolve();
      }),
    );
    await qmp.execute('system_powerdown');
    await gotShutdown;
    expect(events.map((e) => e.event)).toEqual(['POWERDOWN', 'SHUTDOWN']);
    expect(events[1]?.data).toEqual({ guest: true, reason: 'guest-shutdown' });
    qmp.close();
  });

  it('rejects pending commands when the server goes away', async () => {
    const s = await start();
    s.handler = (_msg, sock) => sock.destroy();
    const qmp = await QmpClient.connect(s.path);
    const err = await qmp.execute('quit').catch((e: unknown) => e);
    expect(CoworkError.is(err, 'unavailable')).toBe(true);
    expect(qmp.isClosed).toBe(true);
    await expect(qmp.execute('query-status')).rejects.toThrow(/QMP is closed/);
  });

  it('times out a command that gets no reply', async () => {
    const s = await start();
    s.handler = () => {};
    const qmp = await QmpClient.connect(s.path);
    const err = await qmp.execute('query-status', undefined, { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(CoworkError.is(err, 'timeout')).toBe(true);
    qmp.close();
  });

  it('waits for a socket that appears later (QEMU still starting)', async () => {
    const path = join(dir, 'qmp.sock');
    const pending = QmpClient.connect(path, { timeoutMs: 3000 });
    await new Promise((r) => setTimeout(r, 200));
    server = new FakeQmpServer(path);
    await server.listen();
    const qmp = await pending;
    expect(await qmp.execute('query-status')).toEqual({});
    qmp.close();
  });

  it('gives up with a timeout when no socket ever appears', async () => {
    const err = await QmpClient.connect(join(dir, 'missing.sock'), { timeoutMs: 200 }).catch(
      (e: unknown) => e,
    );
    expect(CoworkError.is(err, 'timeout')).toBe(true);
  });

  it('fails with a timeout when the server never greets', async () => {
    const s = await start(false);
    const err = await QmpClient.connect(s.path, { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(CoworkError.is(err, 'timeout')).toBe(true);
    expect((err as Error).message).toMatch(/greeting/);
  });

  it('ignores garbage lines without breaking the session', async () => {
    const s = await start();
    s.handler = (msg, sock) => {
      sock.write('not json\n{"unexpected":1}\n');
      s.reply(sock, { return: 42, id: msg.id });
    };
    const qmp = await QmpClient.connect(s.path);
    const problems: unknown[] = [];
    qmp.on('protocolError', (e) => problems.push(e));
    expect(await qmp.execute('x')).toBe(42);
    expect(problems).toHaveLength(2);
    qmp.close();
  });
});
