import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoworkError } from '../../errors.js';
import type { DriverCapabilities, GuestNetwork, ProbeResult, VmDriver, VmHandle, VmSpec } from '../driver.js';
import { assertVzBootable, currentVzHost, type VzHost } from './boot-checks.js';
import { VzVmHandle } from './handle.js';
import { gatherVzFacts, signedNodePath } from './host-facts.js';
import type { VzConfig } from './native.js';
import { vzProbe } from './probe.js';

/**
 * Virtualization.framework driver (macOS 13+). Thin on purpose: the VM lives in a child process
 * (runner.ts) started from an entitled copy of node, and this class only speaks the same
 * VmDriver contract as QEMU. No NIC: SSH and the egress proxy travel over vsock.
 * NEVER RUN ON A MAC: no Mac exists where this project is developed (see README, "macOS status").
 * On Linux the driver, handle and runner run for real against tests/helpers/fake-vz-bridge.cjs
 * (tests/integration/vz-fake-bridge.test.ts); scripts/macos-acceptance.sh is the first Mac run.
 */
export const VZ_CAPABILITIES: DriverCapabilities = {
  shareModes: ['virtiofs'],
  accels: ['auto', 'hvf'],
  gracefulShutdown: true,
  // The bridge attaches exactly one (read-only) disk, VzConfig.rootfs; a second, writable
  // VZVirtioBlockDeviceConfiguration needs a `disks` list in the bridge and its ObjC++ first.
  cacheDisk: false,
  // The counterpart of QEMU's warm start (qemu/warm.ts) is VZVirtualMachine's
  // `saveMachineStateToURL:completionHandler:` / `restoreMachineStateFromURL:completionHandler:`
  // (macOS 14+, on a paused VM whose configuration `validateSaveRestoreSupportWithError:`
  // accepts). It would snapshot at the same guest warm point (cowork.warm=, before the seed),
  // but VZ's shares are virtiofs, which the guest must mount only after the restore, and the
  // go line would travel over vsock, not a hostfwd. Neither the bridge calls nor those two
  // differences are built (no Mac here to compile or run them), so VZ declares no warm start
  // and `VmSpec.warm` always boots cold there, saying so.
  warmStart: false,
};

/**
 * No NIC: sshd and the egress proxy travel over vsock. cowork-init (transport=vsock) listens on
 * the guest's 127.0.0.1 at the proxy port and relays each connection to host CID 2, where the
 * runner relays it on to spec.egress.hostPort.
 */
export const VZ_GUEST_NETWORK: GuestNetwork = {
  transport: 'vsock',
  egress: { address: '127.0.0.1', port: 3128, relay: 'driver' },
};

export { signedNodePath };

const DEFAULT_BOOT_TIMEOUT_MS = 60_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

export interface VzDriverOptions {
  /** Environment for the runner and for locating the signed node (COWORK_VM_VZ_NODE). */
  env?: NodeJS.ProcessEnv;
  /** How long connect() waits for the guest to accept a vsock connection. */
  connectTimeoutMs?: number;
  /** The host start() checks images against (platform, arch); default: this process. */
  host?: VzHost;
}

/**
 * The runner as plain JS. From dist/ it sits next to this file; when this module is loaded from
 * src/ (vitest) the signed node cannot run TypeScript, so the compiled copy in dist/ is used.
 */
export function runnerScript(moduleUrl: string = import.meta.url): string {
  const here = fileURLToPath(moduleUrl);
  if (here.endsWith('.js')) return join(here, '..', 'runner.js');
  return fileURLToPath(new URL('../../../../dist/host/vm/vz/runner.js', moduleUrl));
}

export class VzDriver implements VmDriver {
  readonly name = 'vz' as const;
  readonly capabilities = VZ_CAPABILITIES;
  readonly network = VZ_GUEST_NETWORK;
  private readonly env: NodeJS.ProcessEnv;

  constructor(private readonly opts: VzDriverOptions = {}) {
    this.env = opts.env ?? process.env;
  }

  async probe(): Promise<ProbeResult> {
    return vzProbe(gatherVzFacts(this.env));
  }

  async start(
    spec: VmSpec,
    opts: { signal?: AbortSignal; onProgress?: (line: string) => void } = {},
  ): Promise<VmHandle> {
    if (opts.signal?.aborted) throw new CoworkError('cancelled', 'the start was cancelled before it began');
    // Everything that can be known before spawning is checked first: no process for a doomed boot.
    if (spec.shareMode === '9p')
      throw new CoworkError('invalidArgument', 'the VZ driver shares folders with virtiofs only, not 9p');
    if (!this.capabilities.accels.includes(spec.accel))
      throw new CoworkError('invalidArgument', `the VZ driver always uses hvf, not ${spec.accel}`);
    assertVzBootable(spec.image, this.opts.host ?? currentVzHost());
    const node = signedNodePath(this.env);
    if (!existsSync(node)) {
      throw new CoworkError(
        'unavailable',
        `no entitled node binary at ${node} — run \`bash scripts/sign-node-macos.sh\``,
      );
    }
    const runner = runnerScript();
    if (!existsSync(runner)) {
      throw new CoworkError('unavailable', `the VZ runner ${runner} is missing — run \`npm run build\``);
    }
    mkdirSync(spec.runDir, { recursive: true, mode: 0o700 });
    const consoleLogPath = join(spec.runDir, 'console.log');
    writeFileSync(consoleLogPath, '');
    const connectTimeoutMs = this.opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const child = spawn(node, [runner], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: this.env,
    });
    const handle = new VzVmHandle(child, consoleLogPath, spec.guestPorts, connectTimeoutMs);
    opts.onProgress?.('booting with Virtualization.framework');
    handle.send({ type: 'start', config: vzConfig(spec, consoleLogPath) });
    const bootTimeoutMs = spec.bootTimeoutMs ?? DEFAULT_BOOT_TIMEOUT_MS;
    await handle.waitStarted(bootTimeoutMs, opts.signal);
    // The vsock listener is attached only once start completed (as mature VZ users do).
    if (spec.egress)
      handle.send({ type: 'listen', port: spec.egress.guestPort, hostPort: spec.egress.hostPort });
    await handle.waitReady(bootTimeoutMs, opts.signal);
    return handle;
  }
}

/** The bridge's configuration for a spec. Pure. */
export function vzConfig(spec: VmSpec, consoleLogPath: string): VzConfig {
  return {
    kernel: spec.image.kernel,
    initrd: spec.image.initrd,
    rootfs: spec.image.rootfs,
    cmdline: [
      'console=hvc0',
      'quiet',
      'panic=-1',
      'cowork.root=/dev/vda',
      'cowork.share=virtiofs',
      'cowork.transport=vsock',
      ...(spec.kernelArgs ?? []),
    ].join(' '),
    cpus: spec.cpus,
    memoryMiB: spec.memoryMiB,
    shares: [spec.workspace, spec.seed].map((s) => ({ tag: s.tag, path: s.hostPath, readOnly: s.readOnly })),
    consoleLog: consoleLogPath,
  };
}
