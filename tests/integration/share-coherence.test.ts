import {
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sandbox } from '../../src/host/sandbox/sandbox.js';
import { makeTestEnv, startGuestBehindProxy, type TestSandboxEnv } from '../helpers/sandbox.js';

// The workspace share with the settings cowork-vm uses (virtiofs cache=none; 9p cache=none,
// msize 512 KiB) stays coherent both ways: what the host changes is what the guest's next
// command sees, and what a guest command wrote is on the host when it returns. No sleeps: each
// change is read back at once, so an attribute or page cache would show (an old size, old
// bytes, a deleted file still there). One real guest per share mode (TCG).

for (const share of ['virtiofs', '9p'] as const) {
  describe(`the workspace over ${share}`, () => {
    let t: TestSandboxEnv;
    let sandbox: Sandbox;
    beforeAll(async () => {
      t = makeTestEnv(`share-${share}`);
      // An ordinary user's workspace (root's would add the bindfs layer in the guest).
      if (process.getuid?.() === 0) chownSync(t.workspace, 1000, 1000);
      sandbox = await startGuestBehindProxy(t, 0, { share, egress: undefined, cpus: 2, memoryMiB: 1024 });
      expect(sandbox.info.share).toBe(share);
    });
    afterAll(async () => {
      await sandbox?.stop();
      t?.cleanup();
    });

    const sh = async (command: string) => {
      const r = await sandbox.exec(command, { timeoutMs: 60_000 });
      return { code: r.exitCode, out: r.stdout };
    };
    const host = (name: string) => join(t.workspace, name);
    const asOwner = (p: string) => {
      if (process.getuid?.() === 0) chownSync(p, 1000, 1000);
    };

    it("sees the host's writes, growth, shrinking, renames and deletes at the next command", async () => {
      writeFileSync(host('h.txt'), 'one\n');
      asOwner(host('h.txt'));
      expect(await sh('cat /workspace/h.txt')).toEqual({ code: 0, out: 'one\n' });
      writeFileSync(host('h.txt'), 'two, and longer than before\n');
      expect(await sh('cat /workspace/h.txt; stat -c %s /workspace/h.txt')).toEqual({
        code: 0,
        out: 'two, and longer than before\n28\n',
      });
      writeFileSync(host('h.txt'), '3\n');
      expect(await sh('cat /workspace/h.txt; stat -c %s /workspace/h.txt')).toEqual({
        code: 0,
        out: '3\n2\n',
      });
      renameSync(host('h.txt'), host('moved.txt'));
      expect(await sh('test -e /workspace/h.txt; echo $?; cat /workspace/moved.txt')).toEqual({
        code: 0,
        out: '1\n3\n',
      });
      rmSync(host('moved.txt'));
      mkdirSync(host('d'));
      writeFileSync(host('d/new.txt'), 'new\n');
      expect(
        await sh('test -e /workspace/moved.txt; echo $?; ls /workspace/d; cat /workspace/d/new.txt'),
      ).toEqual({
        code: 0,
        out: '1\nnew.txt\nnew\n',
      });
    });

    it("has the guest's writes on the host when the command returns", async () => {
      expect((await sh('printf guest > /workspace/g.txt')).code).toBe(0);
      expect(readFileSync(host('g.txt'), 'utf8')).toBe('guest');
      expect((await sh('printf -- "-more" >> /workspace/g.txt')).code).toBe(0);
      expect(readFileSync(host('g.txt'), 'utf8')).toBe('guest-more');
      expect(statSync(host('g.txt')).size).toBe(10);
      expect((await sh(': > /workspace/g.txt')).code).toBe(0);
      expect(readFileSync(host('g.txt'), 'utf8')).toBe('');
      expect((await sh('mv /workspace/g.txt /workspace/g2.txt && mkdir /workspace/gd')).code).toBe(0);
      expect([
        existsSync(host('g.txt')),
        existsSync(host('g2.txt')),
        statSync(host('gd')).isDirectory(),
      ]).toEqual([false, true, true]);
      expect((await sh('rm /workspace/g2.txt')).code).toBe(0);
      expect(existsSync(host('g2.txt'))).toBe(false);
    });

    it('a file the host rewrites while the guest holds it open reads new bytes on the next open', async () => {
      writeFileSync(host('o.txt'), 'aaaa\n');
      asOwner(host('o.txt'));
      // The guest reads it once (pages cached if the share caches them), then the host rewrites it.
      expect(await sh('cat /workspace/o.txt')).toEqual({ code: 0, out: 'aaaa\n' });
      writeFileSync(host('o.txt'), 'bbbb\n');
      expect(await sh('cat /workspace/o.txt')).toEqual({ code: 0, out: 'bbbb\n' });
    });
  });
}
