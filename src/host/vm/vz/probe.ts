import type { ProbeResult } from '../driver.js';
import type { ImageArch } from '../image-recipe.js';

/**
 * Whether the VZ driver can run here, as a pure function of facts gathered elsewhere
 * (host-facts.ts), so every refusal and its wording is unit-tested on Linux. Checks run in the
 * order a user has to fix them; each refusal says what to do.
 */

export const SIGN_FIX = 'bash scripts/sign-node-macos.sh';
export const VIRTUALIZATION_ENTITLEMENT = 'com.apple.security.virtualization';

export interface VzHostFacts {
  platform: NodeJS.Platform;
  /** Darwin kernel major (22 = macOS 13). */
  darwinMajor: number;
  /** process.arch of the node running cowork-vm. */
  processArch: string;
  /** `sysctl -n sysctl.proc_translated` = 1: this node is x64 code running under Rosetta. */
  translated: boolean;
  /** Loading the addon: its error, or VZVirtualMachine.isSupported. */
  bridge: { loaded: true; supported: boolean } | { loaded: false; error: string };
  /** The entitled node the runner starts with. */
  node: {
    path: string;
    exists: boolean;
    /** `codesign --verify` of it: ok, or its output. */
    verify?: { ok: boolean; output: string };
    /** `codesign -d --entitlements - --xml` of it. */
    entitlementsXml?: string;
  };
  /** Arches of the guest images in the cache (any name, any recipe). */
  imageArches: ImageArch[];
}

/** True when an entitlements plist grants the virtualization entitlement (`<key>…</key><true/>`). */
export function grantsVirtualization(xml: string): boolean {
  const key = `<key>${VIRTUALIZATION_ENTITLEMENT}</key>`;
  const at = xml.indexOf(key);
  return at >= 0 && /^\s*<true\s*\/>/.test(xml.slice(at + key.length));
}

const refuse = (reason: string, fix: string): ProbeResult => ({ ok: false, reason, fix });

export function vzProbe(f: VzHostFacts): ProbeResult {
  if (f.platform !== 'darwin') {
    return refuse('Virtualization.framework exists on macOS only', 'use the QEMU driver on Linux');
  }
  if (f.darwinMajor < 22) {
    return refuse(
      `macOS 13 (Ventura) or newer is required (this is Darwin ${f.darwinMajor})`,
      'update macOS',
    );
  }
  if (f.translated && f.processArch === 'x64') {
    return refuse(
      'node is an x64 build running under Rosetta on an Apple silicon Mac; Virtualization.framework runs arm64 guests from an arm64 process only',
      'install an arm64 node (e.g. from nodejs.org, or `arch -arm64 brew install node`), then re-run `bash scripts/sign-node-macos.sh` with it',
    );
  }
  if (!f.bridge.loaded)
    return refuse(f.bridge.error, 'npx node-gyp rebuild (needs the Xcode command line tools)');
  if (!f.bridge.supported) {
    return refuse(
      'this Mac cannot run VMs: VZVirtualMachine.isSupported is false (no hardware virtualization — inside a VM this needs nested virtualization, which macOS offers only on M3 or newer hosts)',
      'run cowork-vm on the Mac itself, not in a VM without nested virtualization',
    );
  }
  const node = f.node;
  if (!node.exists) {
    return refuse(
      `no entitled node binary at ${node.path} (Virtualization.framework needs ${VIRTUALIZATION_ENTITLEMENT} on the executable)`,
      SIGN_FIX,
    );
  }
  if (node.verify && !node.verify.ok) {
    return refuse(
      `the signature of ${node.path} does not verify (codesign --verify: ${node.verify.output.trim() || 'failed'})`,
      `${SIGN_FIX} (re-signs a fresh copy)`,
    );
  }
  if (node.entitlementsXml === undefined || !grantsVirtualization(node.entitlementsXml)) {
    return refuse(
      `${node.path} is signed without ${VIRTUALIZATION_ENTITLEMENT} (codesign -d --entitlements shows none)`,
      SIGN_FIX,
    );
  }
  const hostArch: ImageArch = f.translated || f.processArch === 'arm64' ? 'arm64' : 'amd64';
  if (f.imageArches.length > 0 && !f.imageArches.includes(hostArch)) {
    return refuse(
      `the guest images here are ${[...new Set(f.imageArches)].join(', ')} only; this Mac runs ${hostArch} guests`,
      `cowork-vm image build base --arch ${hostArch}, or build it on Linux and \`cowork-vm image import FILE\``,
    );
  }
  return {
    ok: true,
    accel: 'hvf',
    accelReason: 'Virtualization.framework always uses the hypervisor',
    details: { node: node.path, arch: hostArch },
  };
}
