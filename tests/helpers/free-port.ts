import { createServer } from 'node:net';

/**
 * For a process that must be told its port up front (sshd's `Port`, QEMU's `hostfwd`): asking
 * the OS for a free port and then handing it over is a race — another process may bind it in
 * between. So the port is only a guess: `start` binds it for real, and when that fails because
 * the address is in use, another port is tried. Where the code under test can listen on port 0
 * and report the port it got, do that instead; no helper is needed.
 */
export async function onFreePort<T>(
  start: (port: number) => Promise<T>,
  opts: { host?: string; attempts?: number } = {},
): Promise<T> {
  const host = opts.host ?? '127.0.0.1';
  const attempts = opts.attempts ?? 5;
  let last: unknown;
  for (let i = 1; i <= attempts; i++) {
    const port = await unusedPort(host);
    try {
      return await start(port);
    } catch (err) {
      if (!isAddressInUse(err)) throw err;
      last = err;
    }
  }
  throw new Error(
    `no free port on ${host} after ${attempts} attempts: each was taken before it could be bound (last: ${message(last)})`,
  );
}

/**
 * True for an EADDRINUSE from Node, and for the words sshd ("Address already in use") and
 * QEMU ("Could not set up host forwarding rule") use for it in the errors `start` throws.
 */
export function isAddressInUse(err: unknown): boolean {
  if ((err as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE') return true;
  return /EADDRINUSE|address already in use|could not set up host forwarding rule/i.test(message(err));
}

/** A port the OS reports free on `host` right now (a guess: see onFreePort). */
function unusedPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() =>
        typeof addr === 'object' && addr
          ? resolve(addr.port)
          : reject(new Error(`the OS assigned no port on ${host}`)),
      );
    });
  });
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
