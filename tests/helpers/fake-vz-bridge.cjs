'use strict';
/**
 * TEST ONLY: a VzBridge (src/host/vm/vz/native.ts) in plain Node, so the VZ driver, handle and
 * runner run for real on Linux — the runner in its own child process, as on a Mac. The runner
 * loads it instead of the addon when COWORK_VM_TEST_FAKE_VZ=1 and
 * COWORK_VM_VZ_BRIDGE_MODULE=<this file> (see loadVzBridge). CommonJS because loadVzBridge
 * loads the addon with require(), and this stands in for the addon.
 *
 * The "guest": start() resolves after a short delay, then the console log gets COWORK-READY.
 * connect(port) opens a real TCP connection to the service env FAKE_VZ_PORTS maps the port to
 * ("22:40022,…", e.g. a real sshd from tests/helpers/sshd.ts) and hands over its fd; an unmapped
 * port behaves like a guest that never accepts (rejects after timeoutMs, as the addon must).
 *
 * Behaviours are scripted per VM by kernel command line words (spec.kernelArgs):
 *   fakevz.poweroff-after-ready=MS   the guest powers itself off MS after readiness
 *   fakevz.error-after-ready=MS      VZ reports didStopWithError MS after readiness
 *   fakevz.create-throws=TEXT        create() throws TEXT (underscores read as spaces)
 *   fakevz.start-rejects=TEXT        start() rejects with TEXT
 *   fakevz.connect-hang              every connect() waits for its timeout and rejects
 *   fakevz.connect-never-settles     connect() never settles (the runner's own guard must act)
 *   fakevz.requeststop-ignored       requestStop() returns true and the guest does nothing
 *   fakevz.requeststop-false         requestStop() returns false (VZ cannot ask)
 *   fakevz.guest-dial                once listen() is attached, the guest dials the host once and
 *                                    writes "hello-from-guest\n" (the reply lands in the calls log)
 *
 * Every call is appended to <consoleLog>.calls, one line each ("create", "start:begin",
 * "start:end", "listen:3128", "requestStop", "stop", "close" …), so a test can check the order;
 * a listen() before start() completed, or any call after close(), throws — as VZ would misbehave.
 *
 * Like VZ, which hands the host an AF_UNIX socket and relays it to the guest's vsock (see
 * Code-Hex/vz's VirtioSocketConnection), every fd handed out is one end of a real unix-socket
 * connection; the fake relays the other end (to the mapped TCP service, or to its "guest").
 * That end is the libuv fd of a paused net.Socket this module keeps forever and never reads,
 * writes or closes: Node has no dup(), and the runner owns the fd from then on.
 */
const { appendFileSync, rmSync } = require('node:fs');
const net = require('node:net');
const { dirname, join } = require('node:path');

const READY_DELAY_MS = 150;
const START_DELAY_MS = 50;
const POWER_DOWN_MS = 100;
/** Sockets whose fd was handed out: kept referenced so they are never closed under the runner. */
const held = new Set();
let nextId = 1;

function parseBehaviours(cmdline) {
  const b = new Map();
  for (const word of cmdline.split(/\s+/)) {
    if (!word.startsWith('fakevz.')) continue;
    const eq = word.indexOf('=');
    const key = word.slice(7, eq < 0 ? undefined : eq);
    b.set(key, eq < 0 ? '' : word.slice(eq + 1).replace(/_/g, ' '));
  }
  return b;
}

function portMap(env) {
  const map = new Map();
  for (const pair of (env.FAKE_VZ_PORTS || '').split(',').filter(Boolean)) {
    const [guest, host] = pair.split(':').map(Number);
    map.set(guest, host);
  }
  return map;
}

/**
 * One unix-socket connection: resolves with the fd of the client end (paused, held forever) and
 * the accepted server end, which the caller relays. The socket file is removed once connected.
 */
function unixPair(path) {
  return new Promise((resolve, reject) => {
    rmSync(path, { force: true });
    const server = net.createServer();
    server.once('error', reject);
    let client;
    let peer;
    let connected = false;
    // Both ends settled (accepted and connected) before the fd changes hands.
    const done = () => {
      if (!peer || !connected) return;
      server.close();
      rmSync(path, { force: true });
      client.unref();
      held.add(client);
      resolve({ fd: client._handle.fd, peer });
    };
    server.once('connection', (s) => {
      peer = s;
      done();
    });
    server.listen(path, () => {
      client = net.connect({ path });
      client.pause(); // never read: the guest's first bytes belong to whoever gets the fd
      client.once('error', reject);
      client.once('connect', () => {
        connected = true;
        done();
      });
    });
  });
}

let pairs = 0;

class FakeVm {
  constructor(config) {
    this.id = nextId++;
    this.config = config;
    this.behaviours = parseBehaviours(config.cmdline);
    this.state = 'created';
    this.started = false;
    this.closed = false;
    this.cb = undefined;
    this.timers = new Set();
    this.ports = portMap(process.env);
  }
  record(what) {
    appendFileSync(`${this.config.consoleLog}.calls`, `${what}\n`);
  }
  consoleLine(line) {
    appendFileSync(this.config.consoleLog, `${line}\n`);
  }
  later(ms, fn) {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }
  check(what) {
    if (this.closed) throw new Error(`${what} after close()`);
  }
  setState(state, detail) {
    if (this.state === 'stopped' || this.state === 'error') return;
    this.state = state;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.record(`state:${state}`);
    this.cb?.(state, detail);
  }
}

function vmOf(h) {
  if (!(h instanceof FakeVm)) throw new TypeError('not a VZ handle');
  return h;
}

module.exports = {
  isSupported: () => true,

  create(configJson) {
    const config = JSON.parse(configJson);
    const vm = new FakeVm(config);
    vm.record('create');
    const msg = vm.behaviours.get('create-throws');
    if (msg !== undefined) throw new Error(msg || 'invalid configuration');
    return vm;
  },

  start(h) {
    const vm = vmOf(h);
    vm.check('start');
    vm.record('start:begin');
    return new Promise((resolve, reject) => {
      setTimeout(() => {
        const why = vm.behaviours.get('start-rejects');
        if (why !== undefined) {
          vm.record('start:rejected');
          return reject(new Error(why || 'start failed'));
        }
        vm.started = true;
        vm.state = 'running';
        vm.record('start:end');
        resolve();
        vm.later(READY_DELAY_MS, () => {
          vm.consoleLine('[    0.000000] Linux version fake (fake-vz-bridge)');
          vm.consoleLine('COWORK-READY fake');
          const off = vm.behaviours.get('poweroff-after-ready');
          if (off !== undefined)
            vm.later(Number(off), () => {
              vm.consoleLine('reboot: Power down');
              vm.setState('stopped');
            });
          const err = vm.behaviours.get('error-after-ready');
          if (err !== undefined)
            vm.later(Number(err), () =>
              vm.setState(
                'error',
                'Internal Virtualization error. The virtual machine stopped unexpectedly.',
              ),
            );
        });
      }, START_DELAY_MS);
    });
  },

  requestStop(h) {
    const vm = vmOf(h);
    vm.check('requestStop');
    vm.record('requestStop');
    if (vm.state !== 'running') return false;
    if (vm.behaviours.has('requeststop-false')) return false;
    if (vm.behaviours.has('requeststop-ignored')) return true;
    vm.later(POWER_DOWN_MS, () => {
      vm.consoleLine('reboot: Power down');
      vm.setState('stopped');
    });
    return true;
  },

  stop(h) {
    const vm = vmOf(h);
    vm.check('stop');
    vm.record('stop');
    if (vm.state === 'stopped' || vm.state === 'error') return Promise.resolve();
    return new Promise((resolve) =>
      setTimeout(() => {
        vm.setState('stopped');
        resolve();
      }, 20),
    );
  },

  connect(h, port, timeoutMs) {
    const vm = vmOf(h);
    vm.check('connect');
    vm.record(`connect:${port}`);
    if (vm.state !== 'running') return Promise.reject(new Error('the virtual machine is not running'));
    if (vm.behaviours.has('connect-never-settles')) return new Promise(() => {});
    const target = vm.ports.get(port);
    if (target === undefined || vm.behaviours.has('connect-hang')) {
      return new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`connection to port ${port} timed out`)), timeoutMs),
      );
    }
    const path = join(dirname(vm.config.consoleLog), `fake-vsock-${pairs++}.sock`);
    return unixPair(path).then(({ fd, peer }) => {
      const service = net.connect({ host: '127.0.0.1', port: target });
      peer.pipe(service).pipe(peer);
      const close = () => {
        peer.destroy();
        service.destroy();
      };
      for (const s of [peer, service]) {
        s.on('error', close);
        s.on('close', close);
      }
      return fd;
    });
  },

  listen(h, port, onConnection) {
    const vm = vmOf(h);
    vm.check('listen');
    if (!vm.started) {
      vm.record(`listen-too-early:${port}`);
      throw new Error(`listen(${port}) before start() completed`);
    }
    vm.record(`listen:${port}`);
    if (!vm.behaviours.has('guest-dial')) return;
    // One guest→host connection: the fake's end plays the guest.
    const path = join(dirname(vm.config.consoleLog), `fake-vsock-${pairs++}.sock`);
    void unixPair(path).then(({ fd, peer }) => {
      peer.write('hello-from-guest\n');
      peer.on('data', (d) => vm.record(`guest-got:${d.toString().trim()}`));
      peer.on('error', () => {});
      onConnection(fd);
    });
  },

  onState(h, cb) {
    const vm = vmOf(h);
    vm.check('onState');
    vm.cb = cb;
  },

  close(h) {
    const vm = vmOf(h);
    vm.record('close');
    vm.closed = true;
    vm.cb = undefined;
    for (const t of vm.timers) clearTimeout(t);
  },
};
