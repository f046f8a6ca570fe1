import { type ChildProcess, spawn } from 'node:child_process';
import { open, readFile, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoworkError } from '../../errors.js';
import type { ShareTuning } from '../driver.js';

/**
 * Starts virtiofsd (Debian 12: the C one in qemu-system-common, root only) for the workspace and
 * resolves once its vhost-user socket exists, so QEMU can connect. virtiofsd serves one VM and
 * exits when QEMU disconnects; the handle kills it anyway when QEMU is gone.
 */

export interface VirtiofsdOptions {
  binary: string;
  socketPath: string;
  sharedDir: string;
  logPath: string;
  /**
   * Serve the folder read-only. Debian 12's C virtiofsd has no read-only option, so it runs in a
   * private mount namespace (unshare, root) where the folder is bind-mounted onto itself
   * read-only; virtiofsd's own sandbox namespace inherits that mount. The guest cannot write
   * through it whatever it mounts.
   */
  readOnly?: boolean;
  /** Wraps the command (e.g. setpriv --pdeathsig) so it dies with the host process. */
  wrap: (bin: string, args: string[]) => [string, string[]];
  timeoutMs?: number;
  /** Knobs for the bench (VmSpec.shareTuning); the defaults below otherwise. */
  tuning?: Pick<ShareTuning, 'virtiofsCache' | 'virtiofsTimeoutS' | 'virtiofsThreadPoolSize'>;
}

/** fuse-style `-o` values are comma separated; a backslash escapes a comma or a backslash. */
export function escapeFuseOption(value: string): string {
  return value.replace(/[\\,]/g, (c) => `\\${c}`);
}

export function virtiofsdArgs(o: Pick<VirtiofsdOptions, 'socketPath' | 'sharedDir' | 'tuning'>): string[] {
  // cache=none: the host may edit workspace files at any time; the guest must see them at once.
  const t = o.tuning ?? {};
  return [
    `--socket-path=${o.socketPath}`,
    '-o',
    `source=${escapeFuseOption(o.sharedDir)}`,
    '-o',
    `cache=${t.virtiofsCache ?? 'none'}`,
    ...(t.virtiofsTimeoutS !== undefined ? ['-o', `timeout=${t.virtiofsTimeoutS}`] : []),
    ...(t.virtiofsThreadPoolSize !== undefined ? [`--thread-pool-size=${t.virtiofsThreadPoolSize}`] : []),
  ];
}

/** The command that runs virtiofsd: as is, or in a mount namespace with a read-only bind. */
export function virtiofsdCommand(
  o: Pick<VirtiofsdOptions, 'binary' | 'socketPath' | 'sharedDir' | 'readOnly' | 'tuning'>,
): [string, string[]] {
  const args = virtiofsdArgs(o);
  if (!o.readOnly) return [o.binary, args];
  const script = 'mount --bind -- "$0" "$0" && mount -o remount,bind,ro -- "$0" && exec "$@"';
  return [
    'unshare',
    ['--mount', '--propagation', 'private', '--', 'sh', '-c', script, o.sharedDir, o.binary, ...args],
  ];
}

export async function spawnVirtiofsd(o: VirtiofsdOptions): Promise<ChildProcess> {
  const log = await open(o.logPath, 'w');
  const [bin, args] = o.wrap(...virtiofsdCommand(o));
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', log.fd], detached: false });
  let failure: string | undefined;
  child.once('error', (err) => {
    failure = `cannot run ${o.binary}: ${err.message}`;
  });
  child.once('exit', (code, signal) => {
    failure ??= `virtiofsd exited (${signal ?? `code ${code}`})`;
  });
  await log.close(); // only after the listeners: a spawn failure is emitted on the next tick
  const deadline = Date.now() + (o.timeoutMs ?? 10_000);
  while (Date.now() < deadline) {
    if (failure) break;
    const s = await stat(o.socketPath).catch(() => undefined);
    if (s?.isSocket()) return child;
    await sleep(25);
  }
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  const text = (await readFile(o.logPath, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join(' | ');
  throw new CoworkError(
    'unavailable',
    `virtiofsd did not start (${failure ?? 'no socket within the timeout'}): ${text || 'no output'} — ` +
      'set shareMode to 9p to work without it',
  );
}
