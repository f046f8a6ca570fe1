import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Origin } from '../../src/host/api/controller.js';
import { hostPaths } from '../../src/host/paths.js';
import type { RunningController } from '../../src/host/sandbox/index.js';
import { warmImage } from '../../src/host/sandbox/warm.js';
import type { WarmSnapshotInfo } from '../../src/host/vm/driver.js';
import { ImageStore } from '../../src/host/vm/images.js';
import { makeTestEnv, startTestSandbox, type TestSandboxEnv } from '../helpers/sandbox.js';

const local: Origin = { id: 'test', context: 'local' };

/**
 * Warm start against real QEMU guests: one snapshot, two sandboxes restored from it (their own
 * RNG state, host keys, seed and workspace; nothing of one in the other), then a corrupted
 * snapshot, which must be refused, removed and replaced by a cold boot that says why. The image
 * cache is a private folder of links to the real image's files, so the snapshots this test
 * takes and breaks are never seen by another test.
 */
describe('warm start from a memory snapshot', () => {
  let t: TestSandboxEnv;
  let snap: WarmSnapshotInfo;
  const running: RunningController[] = [];

  beforeAll(async () => {
    t = makeTestEnv('warm');
    const real = await new ImageStore(hostPaths(t.env)).resolve('base', 'x86_64');
    const cache = join(t.root, 'cache');
    const dir = join(cache, 'images', basename(real.dir));
    mkdirSync(dir, { recursive: true });
    for (const f of readdirSync(real.dir)) {
      if (statSync(join(real.dir, f)).isFile()) symlinkSync(join(real.dir, f), join(dir, f));
    }
    t.env.COWORK_VM_CACHE_DIR = cache;
    snap = await warmImage({ env: t.env, workspace: t.workspace, cpus: 2, memoryMiB: 1024 });
  });
  afterAll(async () => {
    for (const r of running) await r.shutdown().catch(() => {});
    t?.cleanup();
  });

  async function start(name: string): Promise<RunningController> {
    const workspace = join(t.root, name);
    mkdirSync(workspace);
    const r = await startTestSandbox({ ...t, workspace }, { warm: true });
    running.push(r);
    return r;
  }

  async function run(sb: RunningController, command: string): Promise<string> {
    const out = await sb.controller.exec({ command }, local);
    expect(out.result, `not run: ${out.deniedReason}`).toBeDefined();
    expect(out.result!.exitCode, out.result!.stderr).toBe(0);
    return out.result!.stdout;
  }

  it('restores two sandboxes that share no random state, host key, seed or root', async () => {
    expect(statSync(snap.file).size).toBe(snap.bytes);
    const a = await start('ws-a');
    const b = await start('ws-b');
    for (const sb of [a, b]) {
      expect(sb.sandbox.info.start).toBe('warm');
      expect(sb.sandbox.info.share).toBe('9p');
    }
    // Two copies of one memory image would print the same bytes here without the reseed.
    const rand = 'head -c 32 /dev/urandom | od -An -tx1 | tr -d " \\n"';
    const [ra, rb] = [await run(a, rand), await run(b, rand)];
    expect(ra).toMatch(/^[0-9a-f]{64}$/);
    expect(ra).not.toBe(rb);
    const hostKey = 'ssh-keyscan -t ed25519 127.0.0.1 2>/dev/null | cut -d" " -f2-';
    const [ka, kb] = [(await run(a, hostKey)).trim(), (await run(b, hostKey)).trim()];
    expect(ka).toMatch(/^ssh-ed25519 /);
    expect(ka).not.toBe(kb);
    // The host key is the one this sandbox's seed carried (generated and pinned on the host).
    for (const [sb, key] of [
      [a, ka],
      [b, kb],
    ] as const) {
      const pub = readFileSync(join(sb.stateDir, 'keys', 'ssh_host_ed25519_key.pub'), 'utf8');
      expect(pub).toContain(key.split(' ')[1]);
    }
    expect((await run(a, 'hostname')).trim()).toBe('cowork-ws-a');
    expect((await run(b, 'hostname')).trim()).toBe('cowork-ws-b');
    // The clock was set from the host's at the go line, not left at the snapshot's.
    const guestNow = Number((await run(b, 'date +%s')).trim());
    expect(Math.abs(guestNow - Date.now() / 1000)).toBeLessThan(30);
    // Clean root: what one restored guest writes outside the workspace is not in the other.
    await run(a, 'echo a > /tmp/only-a && echo a > ~/only-a');
    expect(await run(b, 'ls /tmp/only-a ~/only-a 2>/dev/null; echo end')).toBe('end\n');
    expect(await run(b, 'ls /home')).toBe('agent\n');
  });

  it("shares this sandbox's workspace both ways after a restore", async () => {
    const [a] = running;
    writeFileSync(join(a!.workspace, 'from-host.txt'), 'host\n');
    expect(await run(a!, 'cat /workspace/from-host.txt')).toBe('host\n');
    await run(a!, 'echo guest > /workspace/from-guest.txt');
    expect(readFileSync(join(a!.workspace, 'from-guest.txt'), 'utf8')).toBe('guest\n');
    expect(readdirSync(running[1]!.workspace)).toEqual([]);
  });

  it('boots cold, with the reason, when the snapshot is corrupt, and removes it', async () => {
    for (const r of running.splice(0)) await r.shutdown();
    // Garbage in the middle of the RAM section: QEMU refuses the stream.
    const fd = openSync(snap.file, 'r+');
    writeSync(fd, Buffer.alloc(1 << 20, 0x5a), 0, 1 << 20, Math.floor(snap.bytes / 3));
    closeSync(fd);
    const lines: string[] = [];
    const workspace = join(t.root, 'ws-c');
    mkdirSync(workspace);
    const c = await startTestSandbox({ ...t, workspace }, { warm: true, onProgress: (l) => lines.push(l) });
    running.push(c);
    expect(c.sandbox.info.start).toBe('cold');
    expect(c.sandbox.info.startReason).toMatch(/warm snapshot \w+ failed and was removed/);
    expect(lines.some((l) => /cold boot: the warm snapshot \w+ failed and was removed/.test(l))).toBe(true);
    expect(statSync(snap.file, { throwIfNoEntry: false })).toBeUndefined();
    expect(await run(c, 'echo ok')).toBe('ok\n');
  });

  it('says so when the only snapshot is for another VM shape (stale)', async () => {
    for (const r of running.splice(0)) await r.shutdown();
    // A snapshot under another key is another shape's: start must not touch it.
    const dir = join(snap.file, '..');
    writeFileSync(join(dir, '0123456789abcdef01234567.vmstate'), 'x');
    const lines: string[] = [];
    const workspace = join(t.root, 'ws-d');
    mkdirSync(workspace);
    const d = await startTestSandbox({ ...t, workspace }, { warm: true, onProgress: (l) => lines.push(l) });
    running.push(d);
    expect(d.sandbox.info.start).toBe('cold');
    expect(d.sandbox.info.startReason).toMatch(/another VM shape or QEMU version \(stale\)/);
  });
});
