import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Origin } from '../../src/host/api/controller.js';
import { CoworkError } from '../../src/host/errors.js';
import { type RunningController, readLock } from '../../src/host/sandbox/index.js';
import { ensureSandboxKeys } from '../../src/host/ssh/keys.js';
import { SshGuestSession } from '../../src/host/ssh/session.js';
import { makeTestEnv, startTestSandbox, type TestSandboxEnv } from '../helpers/sandbox.js';
import { waitFor } from '../helpers/wait.js';

const local: Origin = { id: 'test', context: 'local' };

describe('sandbox faults against a real QEMU guest', () => {
  let t: TestSandboxEnv;
  let sb: RunningController;

  beforeAll(async () => {
    t = makeTestEnv('faults');
    sb = await startTestSandbox(t);
  });
  afterAll(async () => {
    await sb?.shutdown().catch(() => {});
    t?.cleanup();
  });

  it('refuses a second start for the same workspace while one runs', async () => {
    await expect(startTestSandbox(t)).rejects.toThrow(/already running/);
  });

  it('refuses a guest whose host key does not match the pinned one', async () => {
    const other = await ensureSandboxKeys(join(t.root, 'other-keys'));
    const mine = await ensureSandboxKeys(join(sb.stateDir, 'keys'));
    const attempt = SshGuestSession.connect({
      connect: () => sb.sandbox.vm.connect(22),
      username: 'agent',
      privateKey: mine.clientPrivateKey,
      hostKey: other.hostPublicKey, // pin a different key: the real guest key must be refused
      readyTimeoutMs: 30_000,
    });
    const err = await attempt.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(CoworkError.is(err, 'denied')).toBe(true);
    expect(String((err as Error).message)).toMatch(/host key/i);
  });

  it('reports a clear error, releases the lock and keeps workspace files when QEMU dies mid-exec', async () => {
    const before = await sb.controller.exec(
      { command: 'for i in 1 2 3; do echo line$i >> /workspace/log.txt; done; sync' },
      local,
    );
    expect(before.result?.exitCode).toBe(0);
    const lockFile = join(sb.stateDir, 'lock');
    expect(readLock(lockFile)?.pid).toBe(process.pid);

    // The guest writes the marker once the command runs: QEMU dies with it truly in flight.
    const running = sb.controller.exec({ command: ': > /workspace/exec-started; sleep 120' }, local);
    await waitFor(() => existsSync(join(t.workspace, 'exec-started')), 'the command to start in the guest', {
      timeoutMs: 60_000,
    });
    process.kill(sb.sandbox.vm.pid!, 'SIGKILL');

    const err = await running!.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CoworkError);
    // The driver's words for what happened, passed through as-is.
    expect((err as CoworkError).message).toMatch(
      /VM stopped while the command ran \(the VM process \(qemu\) was killed by SIGKILL\)/,
    );
    const end = await sb.done;
    expect(end.reason).toBe('crashed');
    expect(end.exit?.reason).toBe('the VM process (qemu) was killed by SIGKILL');
    expect(existsSync(lockFile)).toBe(false);
    expect(readFileSync(join(t.workspace, 'log.txt'), 'utf8')).toBe('line1\nline2\nline3\n');
    // After a crash the controller refuses work instead of hanging.
    await expect(sb.controller.exec({ command: 'true' }, local)).rejects.toThrow(/crashed/);
  });
});
