import { posix } from 'node:path';
import { CoworkError } from '../errors.js';

/** Where the workspace is mounted inside the guest (docs/guest-contract.md). */
export const GUEST_WORKSPACE = '/workspace';

/**
 * Turns a path the model gave (relative to the workspace, or absolute) into the absolute guest
 * path the tool will use. The SAME string is what the tool hands to the path guard, so what is
 * checked is exactly what is touched. The path guard decides whether it is allowed.
 */
export function guestPath(input: string): string {
  if (input.includes('\0')) {
    throw new CoworkError('invalidArgument', 'path contains a NUL byte — pass a plain path');
  }
  const trimmed = input.trim();
  if (trimmed === '') throw new CoworkError('invalidArgument', 'path is empty — pass a workspace path');
  return posix.resolve(GUEST_WORKSPACE, trimmed);
}

/** Workspace-relative form for summaries ('.' for the root); absolute paths outside stay absolute. */
export function workspaceRelative(absGuestPath: string): string {
  if (absGuestPath === GUEST_WORKSPACE) return '.';
  if (absGuestPath.startsWith(`${GUEST_WORKSPACE}/`)) return absGuestPath.slice(GUEST_WORKSPACE.length + 1);
  return absGuestPath;
}

/** POSIX single-quote quoting for a word in a guest shell command. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}
