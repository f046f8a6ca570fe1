'use strict';
// cowork-vm guest: makes Node's built-in fetch() use the egress proxy, as curl, git, pip and the
// browser do. Node 18 ignores HTTP(S)_PROXY, and the guest has no other way out. Preloaded by
// NODE_OPTIONS=--require (set by cowork-init only when the guest has a proxy).
//
// fetch() takes its dispatcher from globalThis[Symbol.for('undici.globalDispatcher.1')] the
// first time it runs. Until then this file only defines a getter there: loading Debian's undici
// (node-undici) costs ~100 ms under emulation, so a node process that never fetches never pays.
// Hosts in NO_PROXY (localhost, the guest's own servers) are reached directly.

const KEY = Symbol.for('undici.globalDispatcher.1');
const proxy =
  process.env.HTTPS_PROXY || process.env.https_proxy || process.env.HTTP_PROXY || process.env.http_proxy;

function bypassList() {
  return (process.env.NO_PROXY || process.env.no_proxy || '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
}

function bypasses(list, host) {
  return list.some((p) => {
    if (p === '*') return true;
    const bare = p.replace(/^\*?\./, '');
    return host === bare || host.endsWith(`.${bare}`);
  });
}

const UNDICI = '/usr/share/nodejs/undici/lib';

function makeDispatcher() {
  // The parts, not undici's index: that one asks for the global dispatcher while it loads,
  // which would come back here half-loaded.
  const Agent = require(`${UNDICI}/agent.js`);
  const Dispatcher = require(`${UNDICI}/dispatcher.js`);
  const ProxyAgent = require(`${UNDICI}/proxy-agent.js`);
  // What undici's index adds to every dispatcher (the proxy agent's CONNECT needs connect()).
  Object.assign(Dispatcher.prototype, require(`${UNDICI}/api/index.js`));
  const list = bypassList();
  const direct = new Agent();
  const viaProxy = new ProxyAgent({ uri: proxy });
  class EnvProxyDispatcher extends Dispatcher {
    dispatch(opts, handler) {
      const host = new URL(opts.origin).hostname.replace(/^\[|\]$/g, '').toLowerCase();
      return (bypasses(list, host) ? direct : viaProxy).dispatch(opts, handler);
    }
    close(...args) {
      return Promise.all([direct.close(), viaProxy.close()]).then(() =>
        args.find((a) => typeof a === 'function')?.(),
      );
    }
    destroy(...args) {
      const err = args.find((a) => a instanceof Error) ?? null;
      return Promise.all([direct.destroy(err), viaProxy.destroy(err)]).then(() =>
        args.find((a) => typeof a === 'function')?.(),
      );
    }
  }
  return new EnvProxyDispatcher();
}

if (proxy && !Object.getOwnPropertyDescriptor(globalThis, KEY)) {
  let dispatcher;
  let building = false;
  Object.defineProperty(globalThis, KEY, {
    configurable: true,
    enumerable: false,
    get() {
      if (dispatcher === undefined && !building) {
        building = true;
        try {
          dispatcher = makeDispatcher();
        } catch (err) {
          // Without undici fetch cannot reach anything (no route out): say why, once.
          process.emitWarning(`cowork-vm: fetch() cannot use the egress proxy: ${err.message}`);
          dispatcher = null;
        }
        building = false;
      }
      return dispatcher ?? undefined;
    },
    set(value) {
      // setGlobalDispatcher() by the program itself wins.
      Object.defineProperty(globalThis, KEY, {
        value,
        writable: true,
        enumerable: false,
        configurable: false,
      });
    },
  });
}
