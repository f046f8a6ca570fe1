import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoworkError } from './errors.js';

/**
 * The host requirements list (scripts/host-requirements.tsv) — the one place that says which
 * Debian package provides which command or file and who needs it. scripts/setup-host.sh installs
 * from it; `doctor` and the test fixtures look things up through this module, so a missing tool
 * is always reported with the package and the command that installs it.
 */

export const REQUIREMENT_ROLES = ['runtime', 'image', 'tests', 'bench'] as const;
export type RequirementRole = (typeof REQUIREMENT_ROLES)[number];

export interface HostRequirement {
  package: string;
  arch: 'any' | 'amd64' | 'arm64';
  neededBy: RequirementRole[];
  /** Commands (looked up on PATH) or absolute paths; each entry lists alternatives. */
  provides: string[][];
  why: string;
}

/** Two levels up from src/host or dist/host: the package root, where scripts/ lives. */
export const REQUIREMENTS_FILE = fileURLToPath(
  new URL('../../scripts/host-requirements.tsv', import.meta.url),
);

export function parseHostRequirements(text: string, source = 'host-requirements.tsv'): HostRequirement[] {
  const out: HostRequirement[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '' || line.startsWith('#')) return;
    const cols = line.split('\t');
    const bad = (why: string) =>
      new CoworkError(
        'invalidArgument',
        `${source}:${i + 1}: ${why} — columns: package, arch, needed by, provides, why`,
      );
    if (cols.length !== 5) throw bad(`expected 5 tab-separated columns, got ${cols.length}`);
    const [pkg, arch, needed, provides, why] = cols as [string, string, string, string, string];
    if (!/^[a-z0-9][a-z0-9.+-]+$/.test(pkg)) throw bad(`"${pkg}" is not a Debian package name`);
    if (arch !== 'any' && arch !== 'amd64' && arch !== 'arm64')
      throw bad(`arch "${arch}" is not any|amd64|arm64`);
    const roles = needed.split(',');
    for (const r of roles)
      if (!(REQUIREMENT_ROLES as readonly string[]).includes(r))
        throw bad(`"${r}" is not one of ${REQUIREMENT_ROLES.join(', ')}`);
    const items = provides.split(' ').filter(Boolean);
    if (items.length === 0) throw bad('provides nothing');
    out.push({
      package: pkg,
      arch,
      neededBy: roles as RequirementRole[],
      provides: items.map((it) => it.split('|')),
      why,
    });
  });
  return out;
}

export function loadHostRequirements(file: string = REQUIREMENTS_FILE): HostRequirement[] {
  return parseHostRequirements(readFileSync(file, 'utf8'), file);
}

/** The dpkg architecture of this host. */
export function hostDebArch(arch: string = process.arch): 'amd64' | 'arm64' | undefined {
  return arch === 'x64' ? 'amd64' : arch === 'arm64' ? 'arm64' : undefined;
}

export function requirementsFor(
  roles: readonly RequirementRole[],
  list: HostRequirement[] = loadHostRequirements(),
  arch = hostDebArch(),
): HostRequirement[] {
  return list.filter(
    (r) => (r.arch === 'any' || r.arch === arch) && r.neededBy.some((role) => roles.includes(role)),
  );
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Where one of `alternatives` is on this host (absolute paths as they are, names on PATH + sbin). */
export function locateProvided(
  alternatives: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  const dirs = [...(env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/sbin', '/sbin'];
  for (const alt of alternatives) {
    if (alt.startsWith('/')) {
      if (existsSync(alt)) return alt;
      continue;
    }
    for (const d of dirs) {
      const p = join(d, alt);
      if (executable(p)) return p;
    }
  }
  return undefined;
}

export interface MissingRequirement {
  requirement: HostRequirement;
  /** The entries of `provides` that were not found (each as "a|b"). */
  missing: string[];
}

/** What the given roles need and this host lacks. */
export function missingRequirements(
  roles: readonly RequirementRole[],
  opts: { list?: HostRequirement[]; env?: NodeJS.ProcessEnv } = {},
): MissingRequirement[] {
  const out: MissingRequirement[] = [];
  for (const req of requirementsFor(roles, opts.list)) {
    const missing = req.provides.filter((alts) => !locateProvided(alts, opts.env)).map((a) => a.join('|'));
    if (missing.length) out.push({ requirement: req, missing });
  }
  return out;
}

/** The one line that installs `packages` (what setup-host.sh would run). */
export function installLine(packages: readonly string[]): string {
  return `sudo apt-get install -y --no-install-recommends ${[...new Set(packages)].join(' ')}`;
}

/**
 * The path of a listed command or file, e.g. `requireProvided('/bin/busybox')` or
 * `requireProvided('ssh')`. Throws `unavailable` naming the package and the install line, so a
 * test that needs it FAILS with the fix rather than skipping. An item not in the list is a bug.
 */
export function requireProvided(
  item: string,
  opts: { list?: HostRequirement[]; env?: NodeJS.ProcessEnv } = {},
): string {
  const list = opts.list ?? loadHostRequirements();
  const req = list.find((r) => r.provides.some((alts) => alts.includes(item)));
  if (!req) {
    throw new CoworkError(
      'internal',
      `${item} is not in scripts/host-requirements.tsv — add the package that provides it`,
    );
  }
  const alts = req.provides.find((a) => a.includes(item)) as string[];
  const found = locateProvided(alts, opts.env);
  if (found) return found;
  const roles = req.neededBy.join(',');
  throw new CoworkError(
    'unavailable',
    `${item} is missing (Debian package ${req.package}: ${req.why}) — run: ${installLine([req.package])}  ` +
      `(or: sudo bash scripts/setup-host.sh --for ${roles})`,
  );
}
