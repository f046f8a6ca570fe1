import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostPaths, sandboxStateDir } from '../../src/host/paths.js';
import { Sandbox, type SandboxOptions } from '../../src/host/sandbox/sandbox.js';
import { type RunningController, type StartOptions, startController } from '../../src/host/sandbox/serve.js';
import { createDriver } from '../../src/host/vm/index.js';

/**
 * A throwaway state dir + workspace for one test file. The image cache is the user's real one
 * (built by `cowork-vm image build`; a missing image makes the test fail with the build command).
 * TCG is forced: KVM on these machines is broken (nested) and auto would only probe it.
 */
export interface TestSandboxEnv {
  root: string;
  workspace: string;
  env: NodeJS.ProcessEnv;
  cleanup(): void;
}

export function makeTestEnv(prefix = 'cvm'): TestSandboxEnv {
  const root = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const workspace = join(root, 'ws');
  mkdirSync(workspace);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    COWORK_VM_STATE_DIR: join(root, 'state'),
    COWORK_VM_CONFIG_DIR: join(root, 'config'),
    COWORK_VM_ACCEL: process.env.COWORK_VM_ACCEL ?? 'tcg',
  };
  return { root, workspace, env, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

export async function startTestSandbox(
  t: TestSandboxEnv,
  extra: Partial<StartOptions> = {},
): Promise<RunningController> {
  return startController({ workspace: t.workspace, env: t.env, cpus: 2, memoryMiB: 1024, ...extra });
}

/**
 * A bare Sandbox (no controller) whose only way out is the egress proxy on `proxyPort`: for
 * tests that build their own EgressProxy. TCG, the base image, 1 CPU and 768 MiB unless `extra`
 * says otherwise.
 */
export async function startGuestBehindProxy(
  t: TestSandboxEnv,
  proxyPort: number,
  extra: Partial<SandboxOptions> = {},
): Promise<Sandbox> {
  const paths = hostPaths(t.env);
  return Sandbox.start({
    workspace: t.workspace,
    stateDir: sandboxStateDir(paths, t.workspace),
    paths,
    driver: await createDriver(process.platform, { paths }),
    image: 'base',
    cpus: 1,
    memoryMiB: 768,
    accel: 'tcg',
    share: 'auto',
    egress: { hostPort: proxyPort },
    ...extra,
  });
}
