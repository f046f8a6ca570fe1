/**
 * Paths in the workspace that the HOST later executes or trusts: git metadata (hooks, config,
 * gitdir pointers), direnv's `.envrc`, editor task and settings folders. The guest writes the
 * workspace, so these are ways out of the VM unless the guest cannot change them. This module is
 * the one definition of "protected": the guest's read-only mounts (seed `protect.list`), the
 * host's quarantine of protected paths created later, and the file tools' refusal all use it.
 *
 * Pure: no filesystem access.
 */

/**
 * Inside any `.git` directory (the workspace's, a nested repository's, `.git/modules/<name>/`,
 * `.git/worktrees/<name>/`), entries with these names make git run or trust something:
 * `config` (core.fsmonitor, core.hooksPath, aliases, filter and diff drivers, include.path),
 * `config.worktree`, `hooks/`, `info/` (attributes, excludes), `commondir` (points git at another
 * config and hooks). `objects/` is exempt: its `info/` holds pack lists, not code.
 */
export const GIT_PROTECTED_NAMES = ['config', 'config.worktree', 'hooks', 'info', 'commondir'] as const;

/**
 * The default `[workspace] protect` list (gitignore-like: a name without a slash matches at any
 * depth; a trailing slash is allowed; a leading slash anchors to the workspace root). Why each:
 * - `.envrc`: direnv evaluates it on the host when you cd into the folder.
 * - `.vscode/`: tasks.json (`runOn: folderOpen`), settings that name executables (terminal
 *   profiles, linters, formatters), launch configurations.
 * - `.idea/`: JetBrains run configurations and external tools, shared through the project folder.
 * - `.devcontainer/`: `initializeCommand` runs on the host when the container is built.
 * - `.pre-commit-config.yaml`: pre-commit's hook (installed on the host) runs its `local` entries.
 * - `.husky/`: husky points core.hooksPath here, so these are the repository's hooks.
 * Git metadata is protected always (not part of this list, cannot be turned off).
 */
export const DEFAULT_PROTECT = [
  '.envrc',
  '.vscode/',
  '.idea/',
  '.devcontainer/',
  '.pre-commit-config.yaml',
  '.husky/',
] as const;

export interface ProtectOptions {
  /** Extra patterns, gitignore-like (see DEFAULT_PROTECT). Defaults to DEFAULT_PROTECT. */
  patterns?: readonly string[];
  /** The host filesystem folds case (macOS APFS/HFS+ default, Windows): `.Git/CONFIG` is `.git/config`. */
  caseInsensitive?: boolean;
}

interface CompiledPattern {
  anchored: boolean;
  parts: string[];
  source: string;
}

function compile(pattern: string, fold: boolean): CompiledPattern | null {
  let p = pattern.trim();
  if (p === '') return null;
  const anchored = p.startsWith('/');
  p = p.replace(/^\/+/, '').replace(/\/+$/, '');
  if (p === '' || p.split('/').some((c) => c === '..' || c === '.')) return null;
  const parts = p.split('/').filter((c) => c !== '');
  return {
    anchored: anchored || parts.length > 1,
    parts: fold ? parts.map((c) => c.toLowerCase()) : parts,
    source: pattern,
  };
}

/** Splits a workspace-relative path ('' or '.' is the root) into components, folding case if asked. */
function components(rel: string, fold: boolean): string[] {
  const parts = rel.split('/').filter((c) => c !== '' && c !== '.');
  return fold ? parts.map((c) => c.toLowerCase()) : parts;
}

/** Why `rel` lies inside git metadata that git executes or trusts, or null. */
function gitReason(parts: string[]): string | null {
  for (let i = 0; i < parts.length; i++) {
    if (parts[i] !== '.git') continue;
    const repo = parts.slice(0, i).join('/') || '.';
    const below = parts.slice(i + 1);
    // `.git` itself: replacing it (or creating a gitlink file) changes which repository git uses.
    if (below.length === 0) return `${parts.slice(0, i + 1).join('/')} is the git directory of ${repo}`;
    if (below[0] === 'objects') return null;
    const hit = below.find((c) => (GIT_PROTECTED_NAMES as readonly string[]).includes(c));
    if (hit) return `${parts.join('/')} is git metadata that git on the host executes or trusts (${hit})`;
  }
  return null;
}

function patternMatches(pat: CompiledPattern, parts: string[]): boolean {
  const n = pat.parts.length;
  if (pat.anchored) return parts.length >= n && pat.parts.every((c, i) => c === parts[i]);
  // Unanchored single name: any component at any depth.
  return parts.includes(pat.parts[0] as string);
}

/**
 * Compiled matcher for one workspace. `reason(rel)` says why a workspace-relative path is
 * protected (it or one of its parents matches), or returns null.
 */
export class ProtectedPaths {
  readonly patterns: readonly string[];
  readonly caseInsensitive: boolean;
  private readonly compiled: CompiledPattern[];

  constructor(opts: ProtectOptions = {}) {
    this.patterns = [...(opts.patterns ?? DEFAULT_PROTECT)];
    this.caseInsensitive = opts.caseInsensitive ?? false;
    this.compiled = this.patterns
      .map((p) => compile(p, this.caseInsensitive))
      .filter((p): p is CompiledPattern => p !== null);
  }

  /** The same, plus workspace-root-anchored paths (e.g. a repository's `core.hooksPath`). */
  withPaths(rels: readonly string[]): ProtectedPaths {
    const extra = rels.filter((r) => r !== '').map((r) => `/${r.replace(/^\/+/, '')}`);
    if (extra.length === 0) return this;
    return new ProtectedPaths({
      patterns: [...this.patterns, ...extra.filter((e) => !this.patterns.includes(e))],
      caseInsensitive: this.caseInsensitive,
    });
  }

  reason(rel: string): string | null {
    const parts = components(rel, this.caseInsensitive);
    if (parts.length === 0) return null;
    const git = gitReason(parts);
    if (git) return git;
    for (const pat of this.compiled) {
      if (patternMatches(pat, parts))
        return `${parts.join('/')} is protected by the [workspace] protect entry ${JSON.stringify(pat.source)}`;
    }
    return null;
  }

  isProtected(rel: string): boolean {
    return this.reason(rel) !== null;
  }
}

/** Invalid protect entries (empty, `..`, `.`), named for the config error. */
export function invalidProtectPatterns(patterns: readonly string[]): string[] {
  return patterns.filter((p) => compile(p, false) === null);
}
