import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type HostPaths, workspaceId } from '../paths.js';

/*
 * Which workspaces had a sandbox lately, for the menu's "Start <workspace>" entries. Each
 * sandbox's state folder (paths.ts) gets a small record when its controller starts; the list is
 * read back from those records, newest first, and keeps only folders that still exist.
 */

const RECORD = 'workspace.json';

interface WorkspaceRecord {
  workspace: string;
  lastStartedAt: string;
}

/** Notes that this workspace's controller started now (best effort: a failure only costs the menu entry). */
export function recordWorkspaceStart(stateDir: string, workspace: string, now: Date = new Date()): void {
  const record: WorkspaceRecord = { workspace, lastStartedAt: now.toISOString() };
  try {
    writeFileSync(join(stateDir, RECORD), `${JSON.stringify(record)}\n`, { mode: 0o600 });
  } catch {
    /* the menu then does not offer it */
  }
}

/** Workspaces started before, newest first, at most `limit`, only folders that still exist. */
export function recentWorkspaces(paths: HostPaths, limit: number): string[] {
  const root = join(paths.stateDir, 'sandboxes');
  let dirs: string[];
  try {
    dirs = readdirSync(root);
  } catch {
    return [];
  }
  const found: WorkspaceRecord[] = [];
  for (const dir of dirs) {
    const record = readRecord(join(root, dir, RECORD));
    // A record is believed only in the folder its workspace hashes to, so a copied or edited
    // file cannot make the menu offer a folder under another sandbox's name.
    if (!record || workspaceId(record.workspace) !== dir || !isDirectory(record.workspace)) continue;
    found.push(record);
  }
  found.sort((a, b) => b.lastStartedAt.localeCompare(a.lastStartedAt));
  return found.slice(0, limit).map((r) => r.workspace);
}

function readRecord(file: string): WorkspaceRecord | undefined {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as Partial<WorkspaceRecord>;
    if (typeof v.workspace !== 'string' || typeof v.lastStartedAt !== 'string') return undefined;
    return { workspace: v.workspace, lastStartedAt: v.lastStartedAt };
  } catch {
    return undefined;
  }
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}
