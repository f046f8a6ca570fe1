export { type AccelContext, type AccelVerdict, parseAccel, requestedAccel, resolveAccel } from './accel.js';
export { buildQemuArgs, kernelCmdline, type QemuCommand, type QemuHostConfig } from './args.js';
export { QemuDriver, type QemuDriverOptions } from './driver.js';
export { QemuVmHandle } from './handle.js';
export { QmpClient, type QmpEvent } from './qmp.js';
export { cleanupStrays } from './strays.js';
export { QEMU_GUEST_NETWORK } from './user-net.js';
