export { signedNodePath, VZ_CAPABILITIES, VZ_GUEST_NETWORK, VzDriver } from './driver.js';
export { addonCandidates, loadVzBridge, type VzBridge, type VzConfig } from './native.js';
