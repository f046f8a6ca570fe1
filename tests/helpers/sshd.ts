import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { requireProvided } from '../../src/host/host-requirements.js';
import { onFreePort } from './free-port.js';

/**
 * A real OpenSSH sshd on 127.0.0.1:<free port> for tests, configured like the guest's
 * (pubkey only, one allowed user, our generated host key). When the tests run as root the
 * login user is a throwaway 'cowork-test' account (created if missing); otherwise the
 * current user.
 */

export const SSHD_PATH = '/usr/sbin/sshd';
export const TEST_USER = 'cowork-test';

export interface TestSshd {
  port: number;
  user: string;
  /** A folder the login user owns; use it as cwd. */
  workDir: string;
  /** sshd's own log (stderr, -e) so far. */
  log(): string;
  /** Resolves with the log once it matches `re` (sshd writes asynchronously); rejects after timeoutMs. */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
  /** A fresh TCP stream to this sshd, like VmHandle.connect(22). */
  connect(): Promise<Socket>;
  /** Kills every per-connection sshd process (and the user's processes under them); the listener stays. */
  killConnections(): void;
  /** Stops the listener and all its children. */
  stop(): Promise<void>;
}

export interface StartSshdOptions {
  hostPrivateKey: string;
  authorizedKeysLine: string;
  maxSessions?: number;
  /** Reuse a port (e.g. to restart on the same address). */
  port?: number;
}

function ensureTestUser(): string {
  if (process.getuid?.() !== 0) return userInfo().username;
  try {
    execFileSync('id', ['-u', TEST_USER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--create-home', '--shell', '/bin/bash', TEST_USER], { stdio: 'inherit' });
  }
  // useradd leaves the password '!' (locked); sshd without PAM refuses locked accounts even for
  // public keys. '*' means "no password" without "locked".
  execFileSync('usermod', ['-p', '*', TEST_USER], { stdio: 'ignore' });
  // sshd's privilege separation directory (the ssh service normally creates it).
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  return TEST_USER;
}

/** Every descendant pid of `root`, from /proc (children before grandchildren). */
export function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parent.set(Number(name), ppid);
    } catch {
      // process exited while we looked
    }
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length) {
    const p = queue.shift() as number;
    for (const [pid, pp] of parent) {
      if (pp === p) {
        out.push(pid);
        queue.push(pid);
      }
    }
  }
  return out;
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

interface LaunchedSshd {
  port: number;
  proc: ChildProcess;
  log(): string;
}

/** Writes the config for `port` and starts sshd; resolves once it listens. */
async function launchSshd(
  dir: string,
  user: string,
  port: number,
  maxSessions: number | undefined,
): Promise<LaunchedSshd> {
  const config = [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${join(dir, 'ssh_host_ed25519_key')}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    `AllowUsers ${user}`,
    'StrictModes no',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'PermitRootLogin no',
    'AllowTcpForwarding yes',
    'X11Forwarding no',
    'PrintMotd no',
    'UseDNS no',
    'LogLevel VERBOSE',
    'Subsystem sftp internal-sftp',
    ...(maxSessions ? [`MaxSessions ${maxSessions}`] : []),
  ].join('\n');
  const configPath = join(dir, 'sshd_config');
  writeFileSync(configPath, `${config}\n`);

  const proc: ChildProcess = spawn(SSHD_PATH, ['-D', '-e', '-f', configPath], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  proc.stderr?.on('data', (d: Buffer) => {
    log += d.toString();
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sshd did not start listening:\n${log}`)), 15_000);
    const check = () => {
      if (log.includes(`Server listening on 127.0.0.1 port ${port}`)) {
        clearTimeout(timer);
        proc.stderr?.off('data', check);
        resolve();
      }
    };
    proc.stderr?.on('data', check);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sshd exited with ${code}:\n${log}`));
    });
  });
  return { port, proc, log: () => log };
}

export async function startSshd(opts: StartSshdOptions): Promise<TestSshd> {
  requireProvided(SSHD_PATH); // from the host requirements list: fails with the install line
  const user = ensureTestUser();
  const dir = mkdtempSync(join(tmpdir(), 'cowork-sshd-'));
  chmodSync(dir, 0o755); // the login user must read authorized_keys through it
  const workDir = join(dir, 'work');
  mkdirSync(workDir);
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', user]).toString().trim());
    const gid = Number(execFileSync('id', ['-g', user]).toString().trim());
    chownSync(workDir, uid, gid);
  }
  writeFileSync(join(dir, 'ssh_host_ed25519_key'), opts.hostPrivateKey, { mode: 0o600 });
  writeFileSync(join(dir, 'authorized_keys'), `${opts.authorizedKeysLine}\n`, { mode: 0o644 });
  // sshd must be told its port: a port picked here may be taken before sshd binds it, so a
  // start that fails with "Address already in use" is retried on another (onFreePort).
  const launch = (port: number) => launchSshd(dir, user, port, opts.maxSessions);
  const { port, proc, log } = await (opts.port ? launch(opts.port) : onFreePort(launch));
  const pid = proc.pid as number;

  return {
    port,
    user,
    workDir,
    log,
    waitForLog: (re, timeoutMs = 10_000) =>
      new Promise((resolve, reject) => {
        if (re.test(log())) return resolve(log());
        const timer = setTimeout(() => {
          proc.stderr?.off('data', check);
          reject(new Error(`sshd log never matched ${re}:\n${log()}`));
        }, timeoutMs);
        const check = () => {
          if (!re.test(log())) return;
          clearTimeout(timer);
          proc.stderr?.off('data', check);
          resolve(log());
        };
        proc.stderr?.on('data', check);
      }),
    connect: () =>
      new Promise((resolve, reject) => {
        const s = tcpConnect({ host: '127.0.0.1', port }, () => {
          s.off('error', reject);
          resolve(s);
        });
        s.once('error', reject);
      }),
    killConnections: () => killAll(descendants(pid)),
    stop: async () => {
      const kids = descendants(pid);
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGKILL');
        await exited;
      }
      killAll(kids);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
