/**
 * The VZ child process. Virtualization.framework needs the com.apple.security.virtualization
 * entitlement on the *executable*, so the driver starts this file with a signed copy of node
 * (scripts/sign-node-macos.sh) and talks to it over the IPC channel:
 *   parent → child  { type:'start', config: VzConfig } | { type:'connect', id, port } | { type:'stop', graceful }
 *                   | { type:'listen', port, hostPort }  (guest→host vsock → 127.0.0.1:hostPort, the egress proxy)
 *   child → parent  { type:'started' } | { type:'state', state } | { type:'connected', id } + socket handle
 *                   | { type:'error', id?, message }
 * Not run in CI: no Mac exists where this project is developed.
 */
import { Socket, connect as tcpConnect } from 'node:net';
import { loadVzBridge, type VzConfig, type VzHandle } from './native.js';

type Msg =
  | { type: 'start'; config: VzConfig }
  | { type: 'connect'; id: number; port: number }
  | { type: 'listen'; port: number; hostPort: number }
  | { type: 'stop'; graceful: boolean };

const send = (m: unknown, handle?: Socket) => process.send?.(m, handle as never);
const bridge = loadVzBridge();
let vm: VzHandle | undefined;

process.on('message', (m: Msg) => {
  void handle(m).catch((err: Error) =>
    send({ type: 'error', id: 'id' in m ? m.id : undefined, message: err.message }),
  );
});
process.on('disconnect', () => {
  // The parent is gone: never leave a VM running unattended.
  if (vm) void bridge.stop(vm).finally(() => process.exit(0));
  else process.exit(0);
});

async function handle(m: Msg): Promise<void> {
  switch (m.type) {
    case 'start':
      vm = bridge.create(JSON.stringify(m.config));
      bridge.onState(vm, (state) => send({ type: 'state', state }));
      await bridge.start(vm);
      send({ type: 'started' });
      return;
    case 'connect': {
      if (!vm) throw new Error('not started');
      const fd = await bridge.connect(vm, m.port, 10_000);
      send({ type: 'connected', id: m.id }, new Socket({ fd, readable: true, writable: true }));
      return;
    }
    case 'listen':
      if (!vm) throw new Error('not started');
      bridge.listen(vm, m.port, (fd) => {
        const guest = new Socket({ fd, readable: true, writable: true });
        const host = tcpConnect(m.hostPort, '127.0.0.1');
        guest.pipe(host).pipe(guest);
        const close = () => {
          guest.destroy();
          host.destroy();
        };
        guest.on('error', close);
        host.on('error', close);
      });
      return;
    case 'stop':
      if (!vm) return process.exit(0);
      if (!(m.graceful && bridge.requestStop(vm))) await bridge.stop(vm);
      return;
  }
}
