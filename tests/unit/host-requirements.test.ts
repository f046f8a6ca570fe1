import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  loadHostRequirements,
  locateProvided,
  missingRequirements,
  parseHostRequirements,
  REQUIREMENTS_FILE,
  requireProvided,
} from '../../src/host/host-requirements.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SETUP = join(ROOT, 'scripts/setup-host.sh');
const list = loadHostRequirements();
const provided = new Set(list.flatMap((r) => r.provides.flat()).map((p) => p.replace(/^.*\//, '')));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (name === 'node_modules' || name === 'dist') return [];
    if (statSync(p).isDirectory()) return sources(p);
    return /\.(ts|js|mjs|sh)$/.test(name) ? [p] : [];
  });
}

describe('the host requirements list', () => {
  it('parses, and names each package once per architecture', () => {
    expect(list.length).toBeGreaterThan(10);
    // A package may have one line per arch (qemu-system-arm: runtime on arm64, tests on amd64),
    // but never two lines that both apply on one host.
    for (const arch of ['amd64', 'arm64']) {
      const names = list.filter((r) => r.arch === 'any' || r.arch === arch).map((r) => r.package);
      expect(new Set(names).size, arch).toBe(names.length);
    }
  });

  it('covers every host command a literal spawn/execFile in src, tests, scripts and images names', () => {
    // src/guest runs inside the guest; its commands come from the image, not from this host.
    const files = ['src', 'tests', 'scripts', 'images']
      .flatMap((d) => sources(join(ROOT, d)))
      .filter((f) => !f.includes(`${join('src', 'guest')}`));
    const spawned = new Map<string, string>();
    const call = /\b(?:spawn|spawnSync|execFile|execFileSync|mustRun)\(\s*'([A-Za-z0-9._/-]+)'/g;
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(call)) spawned.set(m[1] as string, f);
      // The image recipe's own "for tool in …; do command -v" precondition list.
      for (const m of text.matchAll(/for tool in ([a-z0-9 .-]+); do\s*\n\s*command -v/g))
        for (const t of (m[1] as string).split(' ')) spawned.set(t, f);
    }
    expect(spawned.size).toBeGreaterThan(10);
    const POSIX_SHELL = 'sh'; // /bin/sh exists on every host this runs on (dash or bash)
    const uncovered = [...spawned]
      .filter(([cmd]) => cmd !== POSIX_SHELL && !provided.has(cmd.replace(/^.*\//, '')))
      .map(([cmd, f]) => `${cmd} (${f.slice(ROOT.length)})`);
    expect(uncovered, 'add these to scripts/host-requirements.tsv').toEqual([]);
  });

  it('lists what the tests and the bench need by name', () => {
    for (const item of [
      '/bin/busybox',
      '/usr/sbin/sshd',
      'ssh',
      'ssh-keygen',
      'script',
      'mmdebstrap',
      'cpio',
    ])
      expect(provided.has(item.replace(/^.*\//, '')), item).toBe(true);
    const vfsd = list.find((r) => r.package === 'qemu-system-common');
    expect(vfsd?.provides.flat()).toContain('/usr/lib/qemu/virtiofsd');
  });

  it('refuses a malformed line with its line number', () => {
    expect(() => parseHostRequirements('# c\nfoo\tany\tsometimes\tfoo\twhy\n')).toThrow(/:2: "sometimes"/);
    expect(() => parseHostRequirements('foo any tests foo why\n')).toThrow(/:1: expected 5/);
  });

  it('requireProvided names the package and the install line, and rejects unlisted items', () => {
    const fake = parseHostRequirements('nosuch-pkg\tany\ttests\t/nonexistent/nosuch-tool\tthe test\n');
    expect(() => requireProvided('/nonexistent/nosuch-tool', { list: fake })).toThrow(
      /nosuch-tool is missing \(Debian package nosuch-pkg: the test\) — run: sudo apt-get install .*nosuch-pkg/,
    );
    expect(() => requireProvided('never-listed', { list: fake })).toThrow(
      /not in scripts\/host-requirements.tsv/,
    );
    expect(locateProvided(['/nonexistent/a', 'sh'])).toMatch(/\/sh$/);
    expect(missingRequirements(['tests'], { list: fake }).map((m) => m.missing)).toEqual([
      ['/nonexistent/nosuch-tool'],
    ]);
  });
});

describe('scripts/setup-host.sh', () => {
  const dir = mkdtempSync(join(tmpdir(), 'host-req-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const run = (args: string[], listText?: string) => {
    const env = { ...process.env };
    if (listText !== undefined) {
      const file = join(dir, 'list.tsv');
      writeFileSync(file, listText);
      env.COWORK_VM_HOST_REQUIREMENTS = file;
    }
    return spawnSync('sh', [SETUP, ...args], { env, encoding: 'utf8' });
  };

  it('--check fails loudly with the install line when a package is missing', () => {
    const r = run(['--check', '--for', 'tests'], 'cowork-nosuch-package\tany\ttests\tnosuch\twhy\n');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/MISSING host packages for tests: cowork-nosuch-package/);
    expect(r.stderr).toMatch(/apt-get install -y --no-install-recommends cowork-nosuch-package/);
  });

  it('--check fails when an installed package lacks a file the list promises', () => {
    const r = run(['--check', '--for', 'tests'], 'coreutils\tany\ttests\tcat /nonexistent/promised\twhy\n');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/coreutils: \/nonexistent\/promised/);
  });

  it('refuses an unknown role', () => {
    expect(run(['--check', '--for', 'nothing']).status).toBe(64);
  });

  it('reads the same list as this module', () => {
    expect(REQUIREMENTS_FILE).toBe(join(ROOT, 'scripts/host-requirements.tsv'));
  });
});
