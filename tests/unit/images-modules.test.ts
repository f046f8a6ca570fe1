import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultRecipeRoot } from '../../src/host/vm/image-recipe.js';

// images/hooks/select-modules.awk: which kernel modules go into the initramfs, in load order.
const awkProg = join(defaultRecipeRoot(), 'images', 'hooks', 'select-modules.awk');
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cowork-modsel-'));
  writeFileSync(
    join(dir, 'modules.dep'),
    [
      'kernel/fs/ext4/ext4.ko.xz: kernel/fs/jbd2/jbd2.ko.xz kernel/fs/mbcache.ko.xz kernel/lib/crc16.ko.xz',
      'kernel/fs/jbd2/jbd2.ko.xz:',
      'kernel/fs/mbcache.ko.xz:',
      'kernel/lib/crc16.ko.xz:',
      'kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio_ring.ko',
      'kernel/net/9p/9pnet.ko:',
      'kernel/drivers/virtio/virtio_ring.ko:',
      'kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio_ring.ko',
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'modules.builtin'), 'kernel/fs/overlayfs/overlay.ko\n');
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function select(want: string): { status: number | null; out: string[]; err: string } {
  const r = spawnSync(
    'awk',
    [
      '-v',
      `want=${want}`,
      '-v',
      `builtin=${join(dir, 'modules.builtin')}`,
      '-f',
      awkProg,
      join(dir, 'modules.dep'),
    ],
    { encoding: 'utf8' },
  );
  return { status: r.status, out: r.stdout.split('\n').filter(Boolean), err: r.stderr };
}

describe('select-modules.awk', () => {
  it('puts every dependency before the module that needs it, once', () => {
    const r = select('ext4 9pnet_virtio 9pnet');
    expect(r.status).toBe(0);
    expect(r.out).toEqual([
      'kernel/lib/crc16.ko.xz',
      'kernel/fs/mbcache.ko.xz',
      'kernel/fs/jbd2/jbd2.ko.xz',
      'kernel/fs/ext4/ext4.ko.xz',
      'kernel/drivers/virtio/virtio_ring.ko',
      'kernel/net/9p/9pnet.ko',
      'kernel/net/9p/9pnet_virtio.ko',
    ]);
  });

  it('treats - and _ alike and skips built-in modules silently', () => {
    const r = select('virtio_rng overlay');
    expect(r.status).toBe(0);
    expect(r.err).toBe('');
    expect(r.out).toEqual([
      'kernel/drivers/virtio/virtio_ring.ko',
      'kernel/drivers/char/hw_random/virtio-rng.ko',
    ]);
  });

  it('reports a module the kernel does not have and fails', () => {
    const r = select('ext4 nosuchmod');
    expect(r.status).toBe(1);
    expect(r.err).toBe('select-modules: no module nosuchmod\n');
    expect(r.out).toContain('kernel/fs/ext4/ext4.ko.xz');
  });
});
