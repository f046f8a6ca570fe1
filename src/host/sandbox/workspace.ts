import { accessSync, constants, realpathSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { resolve, sep } from 'node:path';
import { CoworkError } from '../errors.js';

/**
 * Folders that must never be shared into a guest read-write: the filesystem root, system
 * folders, and a home directory itself (a subfolder of home is fine).
 */
const SYSTEM_DIRS = [
  '/bin',
  '/boot',
  '/dev',
  '/etc',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/opt',
  '/proc',
  '/root',
  '/run',
  '/sbin',
  '/srv',
  '/sys',
  '/usr',
  '/var',
  '/tmp',
  '/home',
  '/Users',
  '/System',
  '/Library',
  '/Applications',
  '/private',
  '/snap',
  '/mnt',
  '/media',
];

export interface WorkspaceRefusalInput {
  realPath: string;
  home: string;
}

/** Pure: why this (already real) path may not be a workspace, or undefined when it may. */
export function workspaceRefusal({ realPath, home }: WorkspaceRefusalInput): string | undefined {
  const p = realPath.length > 1 && realPath.endsWith(sep) ? realPath.slice(0, -1) : realPath;
  if (p === '/') return 'the filesystem root cannot be a workspace';
  if (p === home)
    return `your home directory (${home}) cannot be a workspace itself — use a project folder inside it`;
  // /root is root's home: refused as a system folder only when it is the path itself.
  if (SYSTEM_DIRS.includes(p)) return `${p} is a system folder and cannot be a workspace`;
  for (const sys of ['/bin', '/boot', '/dev', '/etc', '/lib', '/proc', '/sbin', '/sys', '/usr', '/System']) {
    if (p.startsWith(sys + '/')) return `${p} is inside the system folder ${sys} and cannot be a workspace`;
  }
  return undefined;
}

/**
 * Resolves and checks a workspace folder: it must exist, be a directory the user can read and
 * write, and not be a refused folder. Returns its real path (symlinks resolved).
 */
export function resolveWorkspace(dir: string | undefined, cwd = process.cwd()): string {
  const requested = resolve(cwd, dir ?? '.');
  let real: string;
  try {
    real = realpathSync(requested);
  } catch (err) {
    throw new CoworkError(
      'notFound',
      `workspace ${requested} does not exist — create it or pass --workspace DIR`,
      err,
    );
  }
  if (!statSync(real).isDirectory()) {
    throw new CoworkError('invalidArgument', `workspace ${real} is not a directory — pass --workspace DIR`);
  }
  try {
    accessSync(real, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (err) {
    throw new CoworkError(
      'invalidArgument',
      `workspace ${real} is not readable and writable by you — fix its permissions or choose another folder`,
      err,
    );
  }
  const refusal = workspaceRefusal({ realPath: real, home: realHome() });
  if (refusal) throw new CoworkError('invalidArgument', `refusing workspace: ${refusal}`);
  return real;
}

function realHome(): string {
  const h = process.env.HOME || homedir();
  try {
    return realpathSync(h);
  } catch {
    return h;
  }
}
