export { signedNodePath, VZ_CAPABILITIES, VzDriver } from './driver.js';
export { addonCandidates, loadVzBridge, type VzBridge, type VzConfig } from './native.js';
