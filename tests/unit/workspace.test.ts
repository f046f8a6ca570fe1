import { mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import { resolveWorkspace, workspaceRefusal } from '../../src/host/sandbox/workspace.js';

const home = '/home/alice';

describe('workspaceRefusal', () => {
  it.each([
    ['/', /filesystem root/],
    [home, /home directory/],
    ['/etc', /system folder/],
    ['/usr', /system folder/],
    ['/usr/local/lib', /inside the system folder \/usr/],
    ['/proc/self', /inside the system folder \/proc/],
    ['/var', /system folder/],
    ['/tmp', /system folder/],
    ['/home', /system folder/],
    ['/Users', /system folder/],
    ['/System/Library', /inside the system folder/],
  ])('refuses %s', (p, why) => {
    expect(workspaceRefusal({ realPath: p, home })).toMatch(why);
  });

  it.each([
    `${home}/src/app`,
    '/srv/projects/x',
    '/tmp/ws-123',
    '/opt/work/app',
    '/var/tmp/x',
    '/root/project',
  ])('accepts %s', (p) => {
    expect(workspaceRefusal({ realPath: p, home })).toBeUndefined();
  });

  it('treats a trailing slash like the folder itself', () => {
    expect(workspaceRefusal({ realPath: `${home}/`, home })).toMatch(/home directory/);
  });
});

describe('resolveWorkspace', () => {
  const base = mkdtempSync(join(tmpdir(), 'ws-unit-'));

  it('resolves symlinks to the real folder before checking', () => {
    const real = join(base, 'real');
    mkdirSync(real);
    const link = join(base, 'link');
    symlinkSync(real, link);
    expect(resolveWorkspace(link)).toBe(real);
  });

  it('refuses a symlink that points at a system folder', () => {
    const link = join(base, 'etc-link');
    symlinkSync('/etc', link);
    expect(() => resolveWorkspace(link)).toThrow(/refusing workspace: \/etc is a system folder/);
  });

  it('says a missing folder does not exist, with the flag to use', () => {
    try {
      resolveWorkspace(join(base, 'missing'));
      expect.unreachable();
    } catch (err) {
      expect(CoworkError.is(err, 'notFound')).toBe(true);
      expect((err as Error).message).toMatch(/does not exist .* --workspace/);
    }
  });

  it('refuses a file', () => {
    expect(() => resolveWorkspace('/etc/hostname')).toThrow(/not a directory/);
  });
});
