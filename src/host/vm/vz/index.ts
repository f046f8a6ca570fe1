export { archMismatch, assertVzBootable, intelPkeysRefusal } from './boot-checks.js';
export {
  runnerScript,
  signedNodePath,
  VZ_CAPABILITIES,
  VZ_GUEST_NETWORK,
  VzDriver,
  type VzDriverOptions,
  vzConfig,
} from './driver.js';
export { addonCandidates, loadVzBridge, type VzBridge, type VzConfig } from './native.js';
export { grantsVirtualization, type VzHostFacts, vzProbe } from './probe.js';
