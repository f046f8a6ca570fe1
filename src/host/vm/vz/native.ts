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

export interface VzBridge {
  create(configJson: string): VzHandle;
  start(h: VzHandle): Promise<void>;
  requestStop(h: VzHandle): boolean;
  stop(h: VzHandle): Promise<void>;
  /** Resolves with a file descriptor the caller owns. */
  connect(h: VzHandle, port: number): Promise<number>;
  listen(h: VzHandle, port: number, onConnection: (fd: number) => void): void;
  onState(h: VzHandle, cb: (state: string) => void): void;
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

/** Loads the addon, or says which paths were tried and how to build it. */
export function loadVzBridge(root = ROOT): VzBridge {
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
