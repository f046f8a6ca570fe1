import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isAddressInUse, onFreePort } from '../helpers/free-port.js';
import { waitFor } from '../helpers/wait.js';

// The shared test helpers are what every other test's waits and ports rest on: a helper that
// swallowed a timeout or retried a real failure would hide bugs everywhere.

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => {
      servers.push(s);
      resolve(s);
    });
  });
}

describe('onFreePort', () => {
  it('tries another port when the one it picked is taken before the bind', async () => {
    const tried: number[] = [];
    const server = await onFreePort(async (port) => {
      tried.push(port);
      // The first time, another process takes the port between the pick and the bind.
      if (tried.length === 1) await listen(port);
      return listen(port);
    });
    expect(tried).toHaveLength(2);
    expect(tried[1]).not.toBe(tried[0]);
    expect(server.address()).toMatchObject({ port: tried[1] });
  });

  it('passes any other failure through at once', async () => {
    let calls = 0;
    const err = await onFreePort(async () => {
      calls++;
      throw new Error('sshd: bad configuration option');
    }).catch((e: unknown) => e);
    expect(calls).toBe(1);
    expect(String(err)).toMatch(/bad configuration option/);
  });

  it('gives up after its attempts and says the ports kept being taken', async () => {
    let calls = 0;
    const err = await onFreePort(
      async (port) => {
        calls++;
        await listen(port);
        return listen(port);
      },
      { attempts: 3 },
    ).catch((e: unknown) => e);
    expect(calls).toBe(3);
    expect(String(err)).toMatch(/no free port on 127\.0\.0\.1 after 3 attempts/);
  });

  it('recognises "in use" as Node, sshd and QEMU report it', () => {
    expect(isAddressInUse(Object.assign(new Error('listen'), { code: 'EADDRINUSE' }))).toBe(true);
    expect(isAddressInUse(new Error('Bind to port 4 on 127.0.0.1 failed: Address already in use.'))).toBe(
      true,
    );
    expect(isAddressInUse(new Error("Could not set up host forwarding rule 'tcp:127.0.0.1:5-:22'"))).toBe(
      true,
    );
    expect(isAddressInUse(new Error('Permission denied'))).toBe(false);
  });
});

describe('waitFor', () => {
  it('resolves with the first truthy value', async () => {
    let n = 0;
    await expect(waitFor(() => ++n >= 3 && `after ${n}`, 'three checks', { intervalMs: 1 })).resolves.toBe(
      'after 3',
    );
  });

  it('fails with what it waited for and the detail', async () => {
    const err = await waitFor(() => false, 'the door to open', {
      timeoutMs: 30,
      detail: () => 'the door is painted on',
    }).catch((e: unknown) => e);
    expect(String(err)).toMatch(/timed out after 30 ms waiting for the door to open\nthe door is painted on/);
  });

  it('stops at once when stopIf gives a reason, after one last check', async () => {
    let last = false;
    const err = await waitFor(() => false, 'a line', {
      timeoutMs: 60_000,
      stopIf: () => 'QEMU exited',
    }).catch((e: unknown) => e);
    expect(String(err)).toMatch(/gave up waiting for a line: QEMU exited/);
    // What happened just before the process stopped still counts.
    const v = await waitFor(() => last && 'seen', 'a line', {
      stopIf: () => {
        last = true;
        return 'exited';
      },
    });
    expect(v).toBe('seen');
  });

  it('does not retry a check that throws', async () => {
    let calls = 0;
    const err = await waitFor(() => {
      calls++;
      throw new Error('assertion inside');
    }, 'x').catch((e: unknown) => e);
    expect(calls).toBe(1);
    expect(String(err)).toMatch(/assertion inside/);
  });
});
