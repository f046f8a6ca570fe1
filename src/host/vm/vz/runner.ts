/**
 * The VZ child process. Virtualization.framework needs the com.apple.security.virtualization
 * entitlement on the *executable*, so the driver starts this file with a signed copy of node
 * (scripts/sign-node-macos.sh) and talks to it over the IPC channel (protocol: ipc.ts).
 *
 * Lifecycle: it lives exactly as long as the VM. When the bridge reports 'stopped' (the guest
 * powered off, or a stop completed) or 'error', it tells the parent, closes the bridge and exits
 * (codes: RUNNER_EXIT). A graceful stop asks the guest (requestStop) and forces bridge.stop when
 * VZ cannot ask or the guest has not powered off within the grace period; the parent's SIGKILL
 * is only the last resort after that. If the parent goes away the VM is force-stopped: it never
 * runs unattended.
 *
 * NEVER RUN ON A MAC: no Mac exists where this project is developed. On Linux it runs, as a real
 * child process, against tests/helpers/fake-vz-bridge.cjs (tests/integration/vz-fake-bridge.test.ts).
 */
import { closeSync } from 'node:fs';
import { Socket, type SocketConstructorOpts, connect as tcpConnect } from 'node:net';
import { type FromRunner, RUNNER_EXIT, ToRunner } from './ipc.js';
import { loadVzBridge, type VzBridge, type VzConfig, type VzHandle, type VzState } from './native.js';

/** Extra time the runner gives bridge.connect beyond its own timeout before giving up on it. */
const CONNECT_SLACK_MS = 1_000;

const send = (m: FromRunner, handle?: Socket): Promise<void> =>
  new Promise((resolve) => {
    if (!process.connected || !process.send) return resolve();
    process.send(m, handle as never, undefined, () => resolve());
  });

let bridge: VzBridge;
try {
  bridge = loadVzBridge();
} catch (err) {
  // No addon (or a fake knob without its guard): say why, then exit — the parent's start() rejects.
  await send({ type: 'failed', phase: 'create', message: (err as Error).message });
  process.exit(RUNNER_EXIT.startFailed);
}

let vm: VzHandle | undefined;
let started = false;
let ending = false;
const pendingListens: { port: number; hostPort: number }[] = [];

/** The VM is gone (or never came up): tell the parent, release the bridge, exit. Runs once. */
async function end(message: FromRunner | undefined, code: number): Promise<void> {
  if (ending) return;
  ending = true;
  if (message) await send(message);
  if (vm) {
    try {
      bridge.close(vm);
    } catch {
      // the handle is dead either way; exiting releases everything
    }
  }
  process.exit(code);
}

function onVmState(state: VzState, detail?: string): void {
  if (state === 'stopped') void end({ type: 'state', state, detail }, RUNNER_EXIT.stopped);
  else if (state === 'error')
    void end({ type: 'state', state, detail: detail ?? 'unknown error' }, RUNNER_EXIT.error);
}

async function forceStop(): Promise<void> {
  if (!vm || ending) return;
  try {
    await bridge.stop(vm);
    // bridge.stop resolves once the VM is stopped; the 'stopped' state normally arrives too.
    onVmState('stopped');
  } catch (err) {
    onVmState('error', `forced stop failed: ${(err as Error).message}`);
  }
}

process.on('message', (raw: unknown) => {
  const parsed = ToRunner.safeParse(raw);
  if (!parsed.success) {
    void send({ type: 'failed', phase: 'protocol', message: `bad message: ${parsed.error.message}` });
    return;
  }
  void dispatch(parsed.data);
});

process.on('disconnect', () => {
  // The parent is gone: never leave a VM running unattended.
  if (!vm || ending) process.exit(RUNNER_EXIT.orphaned);
  void forceStop();
  setTimeout(() => process.exit(RUNNER_EXIT.orphaned), 10_000).unref();
});

async function dispatch(m: ToRunner): Promise<void> {
  switch (m.type) {
    case 'start':
      return startVm(m.config);
    case 'listen':
      if (started) return listen(m.port, m.hostPort);
      pendingListens.push(m); // attached once start resolved, never before
      return;
    case 'connect':
      return connectGuest(m.id, m.port, m.timeoutMs);
    case 'stop':
      return stopVm(m.graceful, m.graceMs);
  }
}

async function startVm(config: VzConfig): Promise<void> {
  try {
    vm = bridge.create(JSON.stringify(config));
  } catch (err) {
    return end({ type: 'failed', phase: 'create', message: (err as Error).message }, RUNNER_EXIT.startFailed);
  }
  bridge.onState(vm, onVmState);
  try {
    await bridge.start(vm);
  } catch (err) {
    return end({ type: 'failed', phase: 'start', message: (err as Error).message }, RUNNER_EXIT.startFailed);
  }
  started = true;
  await send({ type: 'started' });
  for (const l of pendingListens.splice(0)) listen(l.port, l.hostPort);
}

function listen(port: number, hostPort: number): void {
  if (!vm || ending) return;
  try {
    bridge.listen(vm, port, (fd) => relayToHost(fd, hostPort));
  } catch (err) {
    void send({ type: 'failed', phase: 'listen', message: (err as Error).message });
  }
}

/** One guest→host connection, relayed to the egress proxy on the host's loopback. */
function relayToHost(fd: number, hostPort: number): void {
  let guest: Socket;
  try {
    guest = socketFromFd(fd);
  } catch {
    closeSync(fd);
    return;
  }
  const host = tcpConnect(hostPort, '127.0.0.1');
  guest.pipe(host).pipe(guest);
  const close = () => {
    guest.destroy();
    host.destroy();
  };
  guest.on('error', close);
  host.on('error', close);
  guest.on('close', close);
  host.on('close', close);
}

/**
 * Wraps a stream fd the bridge handed over. pauseOnCreate (a Node option the IPC layer itself
 * uses for received sockets, absent from the typings) keeps the runner from reading the guest's
 * first bytes — the SSH banner — before the socket is passed to the parent.
 */
function socketFromFd(fd: number): Socket {
  const opts = { fd, readable: true, writable: true, pauseOnCreate: true } as SocketConstructorOpts;
  return new Socket(opts);
}

async function connectGuest(id: number, port: number, timeoutMs: number): Promise<void> {
  if (!vm || !started || ending) {
    return send({ type: 'connect-failed', id, message: 'the VM is not running', timedOut: false });
  }
  let timer: NodeJS.Timeout | undefined;
  let gaveUp = false;
  // bridge.connect must reject after timeoutMs; this guard covers a bridge that never settles.
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      gaveUp = true;
      reject(new Error(`no answer from the bridge within ${timeoutMs} ms`));
    }, timeoutMs + CONNECT_SLACK_MS);
  });
  const began = Date.now();
  const attempt = bridge.connect(vm, port, timeoutMs);
  attempt.then(
    (fd) => gaveUp && closeSync(fd), // a late fd nobody waits for any more
    () => {},
  );
  try {
    const fd = await Promise.race([attempt, guard]);
    let sock: Socket;
    try {
      sock = socketFromFd(fd);
    } catch (err) {
      closeSync(fd);
      // libuv wraps AF_INET/AF_UNIX stream fds only (VZ's host side is AF_UNIX); say so if not.
      throw new Error(`cannot use the connection's fd ${fd} as a stream: ${(err as Error).message}`);
    }
    await send({ type: 'connected', id }, sock);
    sock.destroy(); // the parent holds its own copy of the fd now
  } catch (err) {
    const timedOut = gaveUp || Date.now() - began >= timeoutMs;
    await send({ type: 'connect-failed', id, message: (err as Error).message, timedOut });
  } finally {
    clearTimeout(timer);
  }
}

async function stopVm(graceful: boolean, graceMs: number): Promise<void> {
  if (!vm) return end(undefined, RUNNER_EXIT.stopped); // nothing was created: nothing to stop
  if (ending) return; // already stopped: stopping again is fine
  let asked = false;
  if (graceful) {
    try {
      asked = bridge.requestStop(vm);
    } catch {
      asked = false;
    }
  }
  if (!asked) return forceStop();
  // The guest was asked; if it has not powered off within the grace period, force it.
  setTimeout(() => void forceStop(), graceMs);
}
