import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { CoworkError } from '../../errors.js';

/** The whole native surface of native/vz-bridge (macOS only), typed in one place. */
export interface VzConfig {
  kernel: string;
  initrd: string;
  rootfs: string;
  cmdline: string;
  cpus: number;
  memoryMiB: number;
  shares: { tag: string; path: string; readOnly: boolean }[];
  consoleLog: string;
}

export type VzHandle = { readonly __vz: unique symbol };

/**
 * What onState reports. 'stopped' = the guest powered itself off (guestDidStopVirtualMachine:) or a
 * forced stop completed; 'error' = virtualMachine:didStopWithError: (detail = the NSError's text).
 * The other names mirror VZVirtualMachineState, reported as they change.
 */
export type VzState = 'starting' | 'running' | 'stopping' | 'stopped' | 'paused' | 'error';

/**
 * The contract of native/vz-bridge, shared by the real addon and tests/helpers/fake-vz-bridge.
 * Every call returns or rejects; none throws an Objective-C exception across the N-API frame
 * (the addon catches NSException and turns it into a JS Error).
 */
export interface VzBridge {
  /** VZVirtualMachine.isSupported: false on a Mac without the hypervisor (or inside a VM without nesting). */
  isSupported(): boolean;
  /** Validates and builds the VM (throws an Error naming the bad field: missing file, invalid share tag…). */
  create(configJson: string): VzHandle;
  start(h: VzHandle): Promise<void>;
  /** Asks the guest to power off (ACPI button on Intel, PL061 GPIO on Apple silicon); false if VZ cannot. */
  requestStop(h: VzHandle): boolean;
  /** Forced stop. Resolves at once when the VM is already stopped. */
  stop(h: VzHandle): Promise<void>;
  /** vsock connection to a guest port; resolves with a CLOEXEC fd the caller owns, rejects after timeoutMs. */
  connect(h: VzHandle, port: number, timeoutMs: number): Promise<number>;
  /** Guest→host vsock connections on `port`. Only after start() resolved. */
  listen(h: VzHandle, port: number, onConnection: (fd: number) => void): void;
  onState(h: VzHandle, cb: (state: VzState, detail?: string) => void): void;
  /** Releases the callbacks and the listener so the process can exit; the handle is dead after it. */
  close(h: VzHandle): void;
}

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** Where the addon may be, in order: a local build, then a prebuilt copy shipped in the package. */
export function addonCandidates(root = ROOT): string[] {
  return [
    `${root}build/Release/vz_bridge.node`,
    `${root}build/Debug/vz_bridge.node`,
    `${root}native/vz-bridge/prebuilt/${process.arch}/vz_bridge.node`,
  ];
}

/**
 * Test-only: a plain-JS module implementing VzBridge (tests/helpers/fake-vz-bridge.cjs), loaded
 * instead of the addon on any platform — honoured only when COWORK_VM_TEST_FAKE_VZ=1 is set as
 * well (the project's pattern for test knobs, like COWORK_VM_TEST_RESOLVE), so a stray
 * COWORK_VM_VZ_BRIDGE_MODULE alone can never swap the hypervisor bridge of a real run.
 */
export const FAKE_BRIDGE_ENV = 'COWORK_VM_VZ_BRIDGE_MODULE';
export const FAKE_BRIDGE_GUARD = 'COWORK_VM_TEST_FAKE_VZ';

/** Loads the addon, or says which paths were tried and how to build it. */
export function loadVzBridge(root = ROOT, env: NodeJS.ProcessEnv = process.env): VzBridge {
  const fake = env[FAKE_BRIDGE_ENV];
  if (fake) {
    if (env[FAKE_BRIDGE_GUARD] !== '1') {
      throw new CoworkError(
        'invalidArgument',
        `${FAKE_BRIDGE_ENV} is only for tests and is honoured only with ${FAKE_BRIDGE_GUARD}=1; unset it`,
      );
    }
    return createRequire(import.meta.url)(fake) as VzBridge;
  }
  if (process.platform !== 'darwin') {
    throw new CoworkError(
      'unsupported',
      'the Virtualization.framework driver runs on macOS only — use the QEMU driver',
    );
  }
  const tried = addonCandidates(root);
  const require = createRequire(import.meta.url);
  for (const path of tried) {
    if (!existsSync(path)) continue;
    try {
      return require(path) as VzBridge;
    } catch (err) {
      throw new CoworkError('unavailable', `cannot load ${path}: ${(err as Error).message}`, err);
    }
  }
  throw new CoworkError(
    'unavailable',
    `the vz-bridge addon is not built (tried ${tried.join(', ')}) — run \`npx node-gyp rebuild\` in the cowork-vm folder (needs Xcode command line tools)`,
  );
}
