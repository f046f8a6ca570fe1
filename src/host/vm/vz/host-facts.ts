import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { hostPaths } from '../../paths.js';
import { ImageCache } from '../image-cache.js';
import { loadVzBridge } from './native.js';
import type { VzHostFacts } from './probe.js';

/**
 * Gathers the facts vzProbe judges (macOS only; the commands are macOS system tools, named by
 * absolute path — they are not Debian packages and never run on the Linux hosts
 * scripts/host-requirements.tsv describes).
 */
const SYSCTL = '/usr/sbin/sysctl';
const CODESIGN = '/usr/bin/codesign';

/** The entitled node binary made by scripts/sign-node-macos.sh. */
export function signedNodePath(env: NodeJS.ProcessEnv = process.env): string {
  return env.COWORK_VM_VZ_NODE || join(hostPaths(env).stateDir, 'vz', 'node');
}

function run(cmd: string, args: string[]): { ok: boolean; output: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error?.message ?? ''}` };
}

export function gatherVzFacts(env: NodeJS.ProcessEnv = process.env): VzHostFacts {
  const platform = process.platform;
  const base: Omit<VzHostFacts, 'bridge' | 'node' | 'imageArches'> = {
    platform,
    darwinMajor: Number(release().split('.')[0]),
    processArch: process.arch,
    translated: platform === 'darwin' && run(SYSCTL, ['-n', 'sysctl.proc_translated']).output.trim() === '1',
  };
  const path = signedNodePath(env);
  if (platform !== 'darwin') {
    return {
      ...base,
      bridge: { loaded: false, error: 'not macOS' },
      node: { path, exists: false },
      imageArches: [],
    };
  }
  let bridge: VzHostFacts['bridge'];
  try {
    bridge = { loaded: true, supported: loadVzBridge(undefined, env).isSupported() };
  } catch (err) {
    bridge = { loaded: false, error: (err as Error).message };
  }
  const exists = existsSync(path);
  const node: VzHostFacts['node'] = { path, exists };
  if (exists) {
    node.verify = run(CODESIGN, ['--verify', '--strict', path]);
    const ent = run(CODESIGN, ['-d', '--entitlements', '-', '--xml', path]);
    node.entitlementsXml = ent.output;
  }
  let imageArches: VzHostFacts['imageArches'] = [];
  try {
    imageArches = new ImageCache(hostPaths(env)).list().map((i) => i.arch);
  } catch {
    imageArches = []; // an unreadable cache is doctor's business, not the driver's
  }
  return { ...base, bridge, node, imageArches };
}
