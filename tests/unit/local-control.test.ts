import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalControlClient } from '../../src/host/control/local-client.js';
import { LOCAL_METHODS } from '../../src/host/control/local-protocol.js';
import { LocalControlServer, type LocalHandlers } from '../../src/host/control/local-server.js';
import { CoworkError } from '../../src/host/errors.js';
import { waitFor } from '../helpers/wait.js';

/** Live Unix-socket tests of the local control protocol (no VM: handlers are the seam here). */
function handlers(overrides: Partial<LocalHandlers> = {}): LocalHandlers {
  const notImpl = async () => {
    throw new CoworkError('unsupported', 'not in this test');
  };
  const base = Object.fromEntries(LOCAL_METHODS.map((m) => [m, notImpl])) as unknown as LocalHandlers;
  return { ...base, ...overrides };
}

function rawExchange(path: string, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    let buf = '';
    s.on('data', (d) => {
      buf += d;
      if (buf.includes('\n')) {
        s.destroy();
        resolve(buf.split('\n')[0]!);
      }
    });
    s.on('error', reject);
    s.write(line);
  });
}

describe('local control socket', () => {
  const servers: LocalControlServer[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
  });

  async function serve(h: LocalHandlers) {
    const path = join(mkdtempSync(join(tmpdir(), 'sock-')), 'control.sock');
    const server = new LocalControlServer(path, h);
    await server.listen();
    servers.push(server);
    return path;
  }

  it('is created with mode 0600', async () => {
    const path = await serve(handlers());
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('round-trips a call, streams output and maps errors to CoworkError codes', async () => {
    const path = await serve(
      handlers({
        status: async () => ({ state: 'running' }),
        exec: async (p, ctx) => {
          ctx.stream('stdout', Buffer.from('hello '));
          ctx.stream('stderr', Buffer.from('oops'));
          return { echoed: p.command };
        },
        'tasks.get': async () => {
          throw new CoworkError('notFound', 'no task t-1');
        },
      }),
    );
    const c = await LocalControlClient.connect(path, '/w');
    expect(await c.call('status')).toEqual({ state: 'running' });
    const chunks: string[] = [];
    const r = await c.call('exec', { command: 'x' }, { onStream: (s, b) => chunks.push(`${s}:${b}`) });
    expect(r).toEqual({ echoed: 'x' });
    expect(chunks).toEqual(['stdout:hello ', 'stderr:oops']);
    const err = await c.call('tasks.get', { id: 't-1' }).catch((e) => e);
    expect(CoworkError.is(err, 'notFound')).toBe(true);
    expect(err.message).toBe('no task t-1');
    c.close();
  });

  it('answers malformed JSON and unknown methods with an error and stays usable', async () => {
    const path = await serve(handlers({ status: async () => 'ok' }));
    expect(JSON.parse(await rawExchange(path, '{nope\n'))).toMatchObject({
      ok: false,
      error: { message: 'malformed JSON' },
    });
    const unknown = JSON.parse(
      await rawExchange(path, '{"type":"req","id":1,"method":"rm -rf","params":{}}\n'),
    );
    expect(unknown).toMatchObject({ ok: false, error: { code: 'invalidArgument' } });
    const extra = JSON.parse(
      await rawExchange(path, '{"type":"req","id":2,"method":"status","params":{},"x":1}\n'),
    );
    expect(extra.ok).toBe(false);
    expect(
      JSON.parse(await rawExchange(path, '{"type":"req","id":3,"method":"status","params":{}}\n')),
    ).toMatchObject({
      id: 3,
      ok: true,
      result: 'ok',
    });
  });

  it('a cancel frame aborts the handler', async () => {
    let aborted = false;
    let started = false;
    const path = await serve(
      handlers({
        exec: (_p, ctx) =>
          new Promise((resolve) => {
            started = true;
            ctx.signal.addEventListener('abort', () => {
              aborted = true;
              resolve('cancelled');
            });
          }),
      }),
    );
    const c = await LocalControlClient.connect(path, '/w');
    const ac = new AbortController();
    const p = c.call('exec', { command: 'sleep' }, { signal: ac.signal });
    await waitFor(() => started, 'the handler to run');
    ac.abort();
    expect(await p).toBe('cancelled');
    expect(aborted).toBe(true);
    c.close();
  });

  it('a client disconnect aborts in-flight handlers', async () => {
    let aborted = false;
    let started = false;
    const path = await serve(
      handlers({
        exec: (_p, ctx) =>
          new Promise((resolve) => {
            started = true;
            ctx.signal.addEventListener('abort', () => {
              aborted = true;
              resolve(null);
            });
          }),
      }),
    );
    const c = await LocalControlClient.connect(path, '/w');
    void c.call('exec', { command: 'x' }).catch(() => {});
    await waitFor(() => started, 'the handler to run');
    c.close();
    await waitFor(() => aborted, 'the handler to be aborted by the disconnect');
  });

  it('connecting where nothing runs says how to start a sandbox', async () => {
    const err = await LocalControlClient.connect(join(tmpdir(), 'nothing-here.sock'), '/w').catch((e) => e);
    expect(CoworkError.is(err, 'invalidState')).toBe(true);
    expect(err.message).toMatch(/no sandbox is running for \/w .*cowork-vm start/);
  });

  it('replaces a stale socket file but refuses a live one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sock-'));
    const path = join(dir, 'control.sock');
    writeFileSync(path, '');
    const s1 = new LocalControlServer(path, handlers());
    await s1.listen();
    servers.push(s1);
    const s2 = new LocalControlServer(path, handlers());
    await expect(s2.listen()).rejects.toThrow(/another controller/);
  });
});
