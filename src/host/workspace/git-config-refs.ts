import { isAbsolute, posix, relative, resolve, sep } from 'node:path';

/**
 * Files a repository's own config makes git run or read as config: `core.hooksPath` (hooks
 * outside `.git/hooks`, e.g. husky's `.husky/`) and `include.path` / `includeIf.*.path` (more
 * config). When they lie inside the workspace the guest could write them, so they are protected
 * like `.git/hooks` and `.git/config`. Pure: takes the config's text.
 */
export function gitConfigReferences(text: string): { hooksPath: string[]; includes: string[] } {
  const hooksPath: string[] = [];
  const includes: string[] = [];
  let section = '';
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/^\s+/, '');
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const head = /^\[\s*([A-Za-z0-9.-]+)(?:\s+"(?:[^"\\]|\\.)*")?\s*\]\s*(.*)$/.exec(line);
    if (head) {
      section = (head[1] as string).toLowerCase();
      // `[core] hooksPath = x` may follow the header on the same line.
      if (!head[2]) continue;
    }
    const body = head ? (head[2] as string) : line;
    const kv = /^([A-Za-z][A-Za-z0-9-]*)\s*=\s*(.*)$/.exec(body);
    if (!kv) continue;
    const key = (kv[1] as string).toLowerCase();
    const value = unquote((kv[2] as string).replace(/\s+[#;].*$/, '').trim());
    if (value === '') continue;
    if (section === 'core' && key === 'hookspath') hooksPath.push(value);
    if ((section === 'include' || section === 'includeif') && key === 'path') includes.push(value);
  }
  return { hooksPath, includes };
}

function unquote(v: string): string {
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) return v.slice(1, -1).replace(/\\(.)/g, '$1');
  return v;
}

/** `target` (absolute, or relative to `base`) as a workspace-relative path, or null if outside. */
export function insideWorkspace(workspace: string, base: string, target: string): string | null {
  if (target.startsWith('~')) return null; // the host user's home: not the guest's to write
  const abs = isAbsolute(target) ? resolve(target) : resolve(base, target);
  const rel = relative(resolve(workspace), abs);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return null;
  return rel.split(sep).join(posix.sep);
}
