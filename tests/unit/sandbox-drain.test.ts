import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalControlClient } from '../../src/host/control/local-client.js';
import { LOCAL_METHODS } from '../../src/host/control/local-protocol.js';
import { LocalControlServer, type LocalHandlers } from '../../src/host/control/local-server.js';
import { CoworkError } from '../../src/host/errors.js';
import { InFlightRequests } from '../../src/host/sandbox/drain.js';

/*
 * Shutdown waits for the requests in flight on the real local socket, not for a delay: a
 * request that finishes is answered before the socket closes, a cancelled one answers
 * "cancelled", and one that never finishes cannot hold shutdown past the deadline.
 */

function handlers(overrides: Partial<LocalHandlers>): LocalHandlers {
  const notImpl = async () => {
    throw new CoworkError('unsupported', 'not in this test');
  };
  const base = Object.fromEntries(LOCAL_METHODS.map((m) => [m, notImpl])) as unknown as LocalHandlers;
  return { ...base, ...overrides };
}

/** A promise with its resolve function, to let a handler finish exactly when the test says. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

describe('InFlightRequests on the local control socket', () => {
  const servers: LocalControlServer[] = [];
  const clients: LocalControlClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const s of servers.splice(0)) await s.close();
  });

  async function serve(inFlight: InFlightRequests, h: LocalHandlers) {
    const path = join(mkdtempSync(join(tmpdir(), 'drain-')), 'control.sock');
    const server = new LocalControlServer(path, inFlight.wrapHandlers(h));
    await server.listen();
    servers.push(server);
    const client = await LocalControlClient.connect(path, '/w');
    clients.push(client);
    return { server, client };
  }

  it('drains only after the request that asked for the stop has been answered, then closes', async () => {
    const inFlight = new InFlightRequests();
    let server: LocalControlServer | undefined;
    let shutdown: Promise<boolean> | undefined;
    const s = await serve(
      inFlight,
      handlers({
        stop: async () => {
          // Like Controller.stop: it starts the shutdown and returns at once.
          shutdown = inFlight.drain(5_000).then(async (drained) => {
            await server?.close();
            return drained;
          });
          return { stopping: true };
        },
      }),
    );
    server = s.server;
    // Without the drain the socket would close under the answer and this call would reject.
    expect(await s.client.call('stop')).toEqual({ stopping: true });
    expect(await shutdown).toBe(true);
  });

  it('waits for a slow request to finish and be answered', async () => {
    const inFlight = new InFlightRequests();
    const g = gate();
    const entered = gate();
    const { client } = await serve(
      inFlight,
      handlers({
        status: async () => {
          entered.open();
          await g.promise;
          return 'done';
        },
      }),
    );
    const answer = client.call('status');
    await entered.promise;
    expect(inFlight.count).toBe(1);
    const drained = inFlight.drain(5_000);
    g.open();
    expect(await drained).toBe(true);
    expect(await answer).toBe('done');
    expect(inFlight.count).toBe(0);
  });

  it('abortAll cancels requests in flight (and later ones); each answers with its own error', async () => {
    const inFlight = new InFlightRequests();
    const entered = gate();
    const cancelled = (signal: AbortSignal) =>
      new Promise((_resolve, reject) => {
        entered.open();
        if (signal.aborted) reject(new CoworkError('cancelled', 'cancelled by shutdown'));
        signal.addEventListener('abort', () => reject(new CoworkError('cancelled', 'cancelled by shutdown')));
      });
    const { client } = await serve(inFlight, handlers({ exec: (_p, ctx) => cancelled(ctx.signal) }));
    const first = client.call('exec', { command: 'sleep 100' }).catch((e: unknown) => e);
    await entered.promise;
    inFlight.abortAll();
    const late = client.call('exec', { command: 'sleep 100' }).catch((e: unknown) => e);
    expect(await inFlight.drain(5_000)).toBe(true);
    for (const err of [await first, await late]) expect(CoworkError.is(err, 'cancelled')).toBe(true);
  });

  it('gives up at the deadline when a request never finishes', async () => {
    const inFlight = new InFlightRequests();
    const entered = gate();
    const { client } = await serve(
      inFlight,
      handlers({
        status: () => {
          entered.open();
          return new Promise(() => {});
        },
      }),
    );
    void client.call('status').catch(() => {});
    await entered.promise;
    expect(await inFlight.drain(50)).toBe(false);
    expect(inFlight.count).toBe(1);
  });

  it('a handler that throws synchronously is still answered and leaves nothing in flight', async () => {
    const inFlight = new InFlightRequests();
    const { client } = await serve(
      inFlight,
      handlers({
        status: (() => {
          throw new CoworkError('invalidState', 'broken handler');
        }) as unknown as LocalHandlers['status'],
      }),
    );
    const err = await client.call('status').catch((e: unknown) => e);
    expect(CoworkError.is(err, 'invalidState')).toBe(true);
    expect(await inFlight.drain(5_000)).toBe(true);
  });

  it('tracks promise-returning calls of an API object (the remote API path)', async () => {
    const inFlight = new InFlightRequests();
    const g = gate();
    const api = {
      value: 7,
      sync: () => 'now',
      slow: async () => {
        await g.promise;
        return 'later';
      },
    };
    const tracked = inFlight.wrapApi(api as never) as unknown as typeof api;
    expect(tracked.value).toBe(7);
    expect(tracked.sync()).toBe('now');
    const slow = tracked.slow();
    expect(inFlight.count).toBe(1);
    const drained = inFlight.drain(5_000);
    g.open();
    expect(await drained).toBe(true);
    expect(await slow).toBe('later');
  });
});
