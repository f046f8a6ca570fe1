import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostPaths } from '../../src/host/paths.js';
import { writeSeed } from '../../src/host/sandbox/seed.js';
import { parseBootSteps } from '../../src/host/vm/boot-steps.js';
import type { BootImage } from '../../src/host/vm/driver.js';
import { ImageStore } from '../../src/host/vm/images.js';
import { QEMU_GUEST_NETWORK } from '../../src/host/vm/qemu/index.js';
import { onFreePort } from '../helpers/free-port.js';
import { waitFor } from '../helpers/wait.js';

// Boots the built base image with a plain QEMU command line (independent of the QEMU driver) to
// check the guest side of docs/guest-contract.md: readiness line, user mapping, sshd lockdown,
// clean root, orphan reaping, FATAL on a bad seed, power-off on QMP system_powerdown.
const isRoot = process.getuid?.() === 0;
const AGENT_UID = isRoot ? 1234 : (process.getuid?.() ?? 1000);
const AGENT_GID = isRoot ? 1235 : (process.getgid?.() ?? 1000);

interface Guest {
  dir: string;
  port: number;
  qemu: ChildProcess;
  exited: Promise<number | null>;
  console: () => string;
}

function tscKhz(): number | undefined {
  const m = /cpu MHz\s*:\s*([0-9.]+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
  return m?.[1] ? Math.round(Number(m[1]) * 1000) : undefined;
}

/** The seed share as a sandbox writes it (writeSeed), with keys made by OpenSSH's ssh-keygen. */
function makeSeed(dir: string, opts: { hostKey: boolean }): void {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'client')]);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'hostkey')]);
  writeSeed(join(dir, 'seed'), {
    hostPrivateKey: readFileSync(join(dir, 'hostkey'), 'utf8'),
    clientPublicKey: readFileSync(join(dir, 'client.pub'), 'utf8'),
    agentUid: AGENT_UID,
    agentGid: AGENT_GID,
    hostname: 'cowork-imgtest',
    // This test drives QEMU by hand, so it gives the QEMU driver's guest address itself.
    guestCidr: QEMU_GUEST_NETWORK.guestCidr,
  });
  if (!opts.hostKey) rmSync(join(dir, 'seed', 'ssh_host_ed25519_key'));
}

/**
 * QEMU is told its forwarded port up front; when another process took it first, QEMU exits
 * before the guest prints anything and the boot is tried again on another port.
 */
async function boot(dir: string): Promise<Guest> {
  const image = await new ImageStore(hostPaths()).resolve('base');
  return onFreePort((port) => launch(dir, image.boot, port));
}

async function launch(dir: string, image: BootImage, port: number): Promise<Guest> {
  mkdirSync(join(dir, 'ws'), { recursive: true });
  if (isRoot) chownSync(join(dir, 'ws'), AGENT_UID, AGENT_GID);
  const hostPub = readFileSync(join(dir, 'hostkey.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
  writeFileSync(join(dir, 'known_hosts'), `[127.0.0.1]:${port} ${hostPub}\n`);
  const tsc = tscKhz();
  const append = ['console=ttyS0', 'quiet', 'panic=-1', 'cowork.root=/dev/vda', 'cowork.share=9p'];
  if (tsc) append.push(`tsc_early_khz=${tsc}`);
  const consoleLog = join(dir, 'console.log');
  writeFileSync(consoleLog, '');
  // biome-ignore format: one QEMU option per line
  const args = [
    '-M', 'microvm', '-accel', 'tcg', '-cpu', 'max', '-m', '768', '-smp', '1',
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
    '-chardev', `file,id=con,path=${consoleLog}`, '-serial', 'chardev:con',
    '-qmp', `unix:${join(dir, 'qmp.sock')},server=on,wait=off`,
    '-kernel', image.kernel, '-initrd', image.initrd, '-append', append.join(' '),
    '-drive', `id=root,file=${image.rootfs},format=raw,if=none,readonly=on`,
    '-device', 'virtio-blk-device,drive=root',
    '-fsdev', `local,id=ws,path=${join(dir, 'ws')},security_model=none`,
    '-device', 'virtio-9p-device,fsdev=ws,mount_tag=workspace',
    '-fsdev', `local,id=seed,path=${join(dir, 'seed')},security_model=none,readonly=on`,
    '-device', 'virtio-9p-device,fsdev=seed,mount_tag=seed',
    '-netdev', `user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:${port}-:22`,
    '-device', 'virtio-net-device,netdev=n0',
  ];
  const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  qemu.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => qemu.on('exit', (code) => resolve(code)));
  const guest = { dir, port, qemu, exited, console: () => readFileSync(consoleLog, 'utf8') };
  // QEMU binds the forwarded port before the guest runs: the first console byte means it is ours.
  try {
    await waitFor(() => guest.console().length > 0, 'the guest console', {
      timeoutMs: 120_000,
      intervalMs: 50,
      stopIf: () => qemu.exitCode !== null && `QEMU exited with ${qemu.exitCode}: ${stderr.trim()}`,
    });
  } catch (err) {
    qemu.kill('SIGKILL');
    throw err;
  }
  return guest;
}

function consoleMatch(guest: Guest, re: RegExp): Promise<string> {
  return waitFor(() => re.exec(guest.console())?.[0], `the console to match ${re}`, {
    timeoutMs: 120_000,
    intervalMs: 200,
    stopIf: () => guest.qemu.exitCode !== null && `QEMU exited with ${guest.qemu.exitCode}`,
    detail: () => `console:\n${guest.console()}`,
  });
}

function ssh(
  guest: Guest,
  command: string,
  user = 'agent',
): { code: number | null; out: string; err: string } {
  const r = spawnSync(
    'ssh',
    [
      '-i',
      join(guest.dir, 'client'),
      '-p',
      String(guest.port),
      '-o',
      `UserKnownHostsFile=${join(guest.dir, 'known_hosts')}`,
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      'BatchMode=yes',
      '-o',
      'ConnectTimeout=30',
      '-o',
      'PreferredAuthentications=publickey,password,keyboard-interactive',
      `${user}@127.0.0.1`,
      command,
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function qmp(guest: Guest, command: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(join(guest.dir, 'qmp.sock'));
    let sent = false;
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      if (!sent && chunk.includes('"QMP"')) {
        sent = true;
        sock.write('{"execute":"qmp_capabilities"}\n');
        sock.write(`{"execute":"${command}"}\n`);
      } else if (chunk.includes('"return"') && chunk.split('"return"').length > 2) {
        sock.end();
        resolve();
      }
    });
    sock.on('close', () => resolve());
    sock.on('error', reject);
  });
}

describe('a booted base guest', () => {
  let guest: Guest;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cowork-imgboot-'));
    makeSeed(dir, { hostKey: true });
    guest = await boot(dir);
    await consoleMatch(guest, /^COWORK-READY .*$/m);
  }, 180_000);

  afterAll(() => {
    guest?.qemu.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints exactly one readiness line with the share it mounted, after the boot step times', () => {
    const lines = guest
      .console()
      .split(/\r?\n/)
      .filter((l) => l.startsWith('COWORK-'));
    expect(lines).toHaveLength(2);
    expect(lines[1]).toBe('COWORK-READY {"share":"9p","sshd":true}');
    // Every step of the initramfs and init, in boot order, each ending no earlier than the last.
    const steps = parseBootSteps(lines[0] ?? '');
    expect(Object.keys(steps ?? {})).toEqual([
      'kernel',
      'modules',
      'devices',
      'root',
      'init',
      'mounts',
      'seed',
      'user',
      'cache',
      'workspace',
      'protect',
      'trust',
      'network',
      'sshd',
      'listening',
    ]);
    const ends = Object.values(steps ?? {});
    expect(ends.every((v, i) => v > 0 && (i === 0 || v >= (ends[i - 1] ?? 0)))).toBe(true);
  });

  it('runs commands as agent with the uid/gid from guest.env and the tools installed', () => {
    const r = ssh(
      guest,
      'id -u; id -g; id -un; hostname; python3 -c "print(6*7)"; git --version; socat -V >/dev/null && echo socat',
    );
    expect(r.err).toBe('');
    expect(r.out.split('\n')).toEqual([
      String(AGENT_UID),
      String(AGENT_GID),
      'agent',
      'cowork-imgtest',
      '42',
      expect.stringMatching(/^git version/),
      'socat',
      '',
    ]);
  });

  it('has no sudo and gives the agent no way to root', () => {
    const r = ssh(
      guest,
      'command -v sudo su doas; test -w /etc/passwd && echo writable; cat /etc/ssh/ssh_host_ed25519_key 2>&1 | head -c 200; ls /run/cowork-seed 2>&1',
    );
    expect(r.out).not.toMatch(/sudo|doas|writable|PRIVATE KEY/);
    expect(r.out).toMatch(/Permission denied/);
    expect(r.out).toMatch(/No such file or directory/); // the seed share is unmounted and gone
  });

  it('has no setuid or setgid programs and a locked root', () => {
    const r = ssh(
      guest,
      'find / -xdev -type f -perm /6000 2>/dev/null; echo end; su -c id root </dev/null 2>&1; echo su=$?',
    );
    expect(r.out.split('\n')[0]).toBe('end');
    expect(r.out).toMatch(/su=1/);
    expect(r.out).not.toMatch(/uid=0/);
  });

  it('refuses root and other users even with the right key, and offers only publickey', () => {
    expect(ssh(guest, 'true', 'root').code).toBe(255);
    expect(ssh(guest, 'true', 'nobody').code).toBe(255);
    const v = spawnSync(
      'ssh',
      [
        '-v',
        '-p',
        String(guest.port),
        '-o',
        'BatchMode=yes',
        '-o',
        `UserKnownHostsFile=${join(dir, 'known_hosts')}`,
        '-o',
        'IdentitiesOnly=yes',
        '-o',
        'IdentityFile=/dev/null',
        'agent@127.0.0.1',
        'true',
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(v.status).toBe(255);
    expect(v.stderr).toMatch(/Authentications that can continue: publickey\r?\n/);
  });

  it('writes the workspace as the mapped user, visible on the host', () => {
    const r = ssh(guest, 'echo from-guest > /workspace/g.txt && mkdir /workspace/sub && echo ok');
    expect(r.out).toBe('ok\n');
    const st = statSync(join(dir, 'ws', 'g.txt'));
    expect(readFileSync(join(dir, 'ws', 'g.txt'), 'utf8')).toBe('from-guest\n');
    expect([st.uid, st.gid]).toEqual([AGENT_UID, AGENT_GID]);
    writeFileSync(join(dir, 'ws', 'h.txt'), 'from-host\n');
    expect(ssh(guest, 'cat /workspace/h.txt').out).toBe('from-host\n');
  });

  it('PID 1 reaps orphaned children', () => {
    const r = ssh(
      guest,
      'for i in 1 2 3 4 5; do (sleep 0.2 &) ; done; sleep 2; ps -e -o stat= | grep -c "^Z" || true',
    );
    expect(r.out.trim()).toBe('0');
  });

  it('powers off on QMP system_powerdown', async () => {
    await qmp(guest, 'system_powerdown');
    const code = await guest.exited;
    expect(code).toBe(0);
    expect(guest.console()).toMatch(/cowork-init: powering off/);
  }, 120_000);
});

describe('a guest with a bad seed', () => {
  it('prints COWORK-FATAL with the reason and powers off by itself', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cowork-imgboot-bad-'));
    try {
      makeSeed(dir, { hostKey: false });
      const guest = await boot(dir);
      try {
        const line = await consoleMatch(guest, /^COWORK-FATAL .*$/m);
        expect(line.trimEnd()).toBe('COWORK-FATAL seed share has no ssh_host_ed25519_key');
        expect(await guest.exited).toBe(0);
        expect(guest.console()).not.toMatch(/COWORK-READY/);
        expect(existsSync(join(dir, 'ws'))).toBe(true);
      } finally {
        guest.qemu.kill('SIGKILL');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
