/**
 * A small glob matcher for workspace-relative paths (gitignore-like):
 *   `*` any characters except `/`, `?` one such character, `**` any number of path segments,
 *   `[abc]` a character class. A pattern without a `/` matches the last path component at any
 *   depth (`.env` matches `a/b/.env`); a leading `/` anchors it to the workspace root;
 *   `dir/**` matches everything under dir.
 */
export function globToRegExp(pattern: string): RegExp {
  let p = pattern.trim().replace(/\\/g, '/');
  let anchored = p.includes('/') && !p.startsWith('**/');
  if (p.startsWith('/')) {
    p = p.slice(1);
    anchored = true;
  }
  if (p.startsWith('./')) {
    p = p.slice(2);
    anchored = true;
  }
  if (p.endsWith('/')) p += '**';
  let re = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i] as string;
    if (c === '*') {
      if (p[i + 1] === '*') {
        const slashAfter = p[i + 2] === '/';
        re += slashAfter ? '(?:.*/)?' : '.*';
        i += slashAfter ? 2 : 1;
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = p.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        const body = p
          .slice(i + 1, end)
          .replace(/^!/, '^')
          .replace(/\\/g, '\\\\');
        re += `[${body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(anchored ? `^${re}$` : `^(?:.*/)?${re}$`);
}

export function matchesGlob(relativePath: string, pattern: string): boolean {
  return globToRegExp(pattern).test(relativePath);
}
