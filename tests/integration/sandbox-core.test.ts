import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Origin } from '../../src/host/api/controller.js';
import type { RunningController } from '../../src/host/sandbox/index.js';
import { makeTestEnv, startTestSandbox, type TestSandboxEnv } from '../helpers/sandbox.js';

const local: Origin = { id: 'test', context: 'local' };

describe('sandbox core against a real QEMU guest', () => {
  let t: TestSandboxEnv;
  let sb: RunningController;

  beforeAll(async () => {
    t = makeTestEnv('core');
    sb = await startTestSandbox(t);
  });
  afterAll(async () => {
    await sb?.shutdown();
    t?.cleanup();
  });

  async function run(command: string, extra: Record<string, unknown> = {}) {
    const out = await sb.controller.exec({ command, ...extra }, local);
    expect(out.result, `not run: ${out.deniedReason}`).toBeDefined();
    return out.result!;
  }

  it('reports stdout, stderr and the exit code', async () => {
    const r = await run('echo out; echo err >&2; exit 3');
    expect(r.stdout).toBe('out\n');
    expect(r.stderr).toBe('err\n');
    expect(r.exitCode).toBe(3);
    expect(r.signal).toBeNull();
  });

  it('runs as the unprivileged agent user in /workspace', async () => {
    const r = await run('id -un; pwd; id -u');
    const [user, cwd, uid] = r.stdout.trim().split('\n');
    expect(user).toBe('agent');
    expect(cwd).toBe('/workspace');
    expect(Number(uid)).not.toBe(0);
  });

  it('reports a signal when the command is killed', async () => {
    const r = await run('kill -9 $$');
    expect(r.exitCode).toBeNull();
    expect(r.signal).toBe('KILL');
  });

  it('kills a command at its timeout and leaves nothing running', async () => {
    const r = await run('sleep 317; echo never', { timeoutMs: 2000 });
    expect(r.timedOut).toBe(true);
    expect(r.stdout).not.toContain('never');
    // The bracket keeps this command's own command line from matching.
    const ps = await run('pgrep -f "slee[p] 317" || echo none');
    expect(ps.stdout.trim()).toBe('none');
  });

  it('caps large output and says it was truncated', async () => {
    const r = await run("head -c 5000000 /dev/zero | tr '\\0' a", { maxOutputBytes: 65536 });
    expect(r.truncated).toBe(true);
    expect(r.stdout.length).toBe(65536);
    expect(r.exitCode).toBe(0);
  });

  it('feeds stdin to the command', async () => {
    const r = await run('wc -c', { stdin: 'hello world' });
    expect(r.stdout.trim()).toBe('11');
  });

  it('shares files both ways through /workspace', async () => {
    await run("printf 'from the guest' > /workspace/guest.txt");
    expect(readFileSync(join(t.workspace, 'guest.txt'), 'utf8')).toBe('from the guest');
    writeFileSync(join(t.workspace, 'host.txt'), 'from the host');
    const r = await run('cat /workspace/host.txt');
    expect(r.stdout).toBe('from the host');
  });

  it('cannot see host paths outside the workspace', async () => {
    const marker = join(t.root, 'outside-marker.txt');
    writeFileSync(marker, 'secret');
    const r = await run(`cat ${marker} 2>&1 || echo absent; cat /etc/hostname`);
    expect(r.stdout).toContain('absent');
    expect(r.stdout).not.toContain('secret');
    const hostHostname = readFileSync('/etc/hostname', 'utf8').trim();
    expect(r.stdout.trim().split('\n').at(-1)).not.toBe(hostHostname);
  });

  it('has no egress except the proxy: a host server on 127.0.0.1 is not reachable via 10.0.2.2', async () => {
    let hits = 0;
    const server: Server = createServer((_req, res) => {
      hits++;
      res.end('reached');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const r = await run(
        `curl --noproxy '*' -sS -m 5 http://10.0.2.2:${port}/ 2>&1; echo "curl=$?"; ` +
          `python3 -c "import socket; s=socket.socket(); s.settimeout(4); s.connect(('10.0.2.2', ${port}))" 2>&1; echo "py=$?"`,
      );
      expect(r.stdout).not.toContain('reached');
      expect(r.stdout).not.toContain('curl=0');
      expect(r.stdout).not.toContain('py=0');
      expect(hits).toBe(0);
      // Through the proxy (the only route out), with no [egress] rules: refused with a reason.
      const viaProxy = await run(`curl -s -m 20 -o /dev/null -w '%{http_code}' http://10.0.2.2:${port}/`);
      expect(viaProxy.stdout).toBe('403');
      expect(hits).toBe(0);
    } finally {
      server.close();
    }
  });

  it('reports which accelerator and share it used', async () => {
    const st = await sb.controller.status();
    expect(st.state).toBe('running');
    expect(['9p', 'virtiofs']).toContain(st.vm.share);
    expect(st.vm.accel).toBe('tcg');
    // The share itself (a root-owned test workspace is then remapped to the agent with bindfs).
    const mounts = await run('cat /proc/mounts');
    const shareLine = mounts.stdout.split('\n').find((l) => l.startsWith('workspace '));
    expect(shareLine).toContain(st.vm.share === '9p' ? ' 9p ' : ' virtiofs ');
  });

  it('gives a clean root on every start while workspace files persist', async () => {
    await run('echo x > /tmp/scratch; echo y > ~/dotfile; echo keep > /workspace/keep.txt');
    await sb.shutdown();
    sb = await startTestSandbox(t);
    const r = await run('ls /tmp/scratch ~/dotfile 2>&1 | grep -c "No such file"; cat /workspace/keep.txt');
    expect(r.stdout.split('\n')[0]).toBe('2');
    expect(r.stdout).toContain('keep');
    expect(existsSync(join(t.workspace, 'keep.txt'))).toBe(true);
  });
});
