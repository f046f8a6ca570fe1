import { z } from 'zod';
import { abridge, bytesOfMB } from './abridge.js';
import { guestFailure } from './call.js';
import { searchCommand } from './guest-files.js';
import { guestPath, workspaceRelative } from './guest-path.js';
import type { Tool, ToolResult } from './types.js';

export { searchCommand };

const readInput = z
  .object({
    path: z.string().min(1).describe('File path, relative to /workspace or absolute.'),
    offset: z.number().int().positive().optional().describe('First line to return (1-based).'),
    limit: z.number().int().positive().optional().describe('Maximum number of lines to return.'),
  })
  .strict();
export type ReadFileInput = z.infer<typeof readInput>;

export const readFileTool: Tool<ReadFileInput, 'files'> = {
  name: 'read_file',
  risk: 'read',
  access: 'files',
  description: 'Read a text file in the VM workspace. Use offset/limit for long files.',
  input: readInput,
  describe: (i) =>
    `read_file ${i.path}${i.offset || i.limit ? ` (lines ${i.offset ?? 1}+${i.limit ?? ''})` : ''}`,
  claim: (i) => ({ kind: 'files', paths: [{ path: guestPath(i.path), access: 'read' }] }),
  async run(input, ctx): Promise<ToolResult> {
    const path = guestPath(input.path);
    const max = bytesOfMB(ctx.maxFileSizeMB);
    let data: Buffer;
    try {
      const st = await ctx.files.stat(path);
      if (st.type === 'directory')
        return { content: `${input.path} is a directory — use list_directory`, isError: true };
      if (st.size > max) {
        return {
          content: `${input.path} is ${st.size} bytes, over the ${ctx.maxFileSizeMB} MB file limit; read parts of it with shell tools (head, sed -n).`,
          isError: true,
        };
      }
      data = await ctx.files.readFile(path, { maxBytes: max });
    } catch (err) {
      return guestFailure('read', input.path, err);
    }
    if (data.subarray(0, 8192).includes(0)) {
      return { content: `${input.path} looks binary (${data.length} bytes); not shown.` };
    }
    const text = data.toString('utf8');
    if (input.offset === undefined && input.limit === undefined) {
      return { content: text === '' ? '(empty file)' : abridge(text) };
    }
    const lines = text.split('\n');
    const start = (input.offset ?? 1) - 1;
    const end = input.limit === undefined ? lines.length : start + input.limit;
    const slice = lines.slice(start, end).join('\n');
    return {
      content: `[lines ${start + 1}-${Math.min(end, lines.length)} of ${lines.length}]\n${abridge(slice)}`,
    };
  },
};

const listInput = z
  .object({ path: z.string().default('.').describe('Directory, relative to /workspace or absolute.') })
  .strict();
export type ListDirectoryInput = z.infer<typeof listInput>;

export const listDirectoryTool: Tool<ListDirectoryInput, 'files'> = {
  name: 'list_directory',
  risk: 'read',
  access: 'files',
  description: 'List a directory in the VM workspace (names, "/" after directories, sizes of files).',
  input: listInput,
  describe: (i) => `list_directory ${i.path}`,
  claim: (i) => ({ kind: 'files', paths: [{ path: guestPath(i.path), access: 'read', scope: 'entries' }] }),
  async run(input, ctx): Promise<ToolResult> {
    const path = guestPath(input.path);
    // Names stay visible (the shell shows them too, and the model should not recreate the file);
    // size and type of a withheld entry are not shown.
    const withheld = new Set(ctx.files.withheld.map((w) => w.replace(/\/$/, '')));
    try {
      const entries = await ctx.files.list(path);
      entries.sort((a, b) => a.name.localeCompare(b.name));
      const lines = entries.map((e) =>
        withheld.has(e.name)
          ? `${e.name}  (withheld: a Read rule denies or asks for it)`
          : e.type === 'directory'
            ? `${e.name}/`
            : e.type === 'file'
              ? `${e.name}  ${e.size}`
              : `${e.name}  (${e.type})`,
      );
      return {
        content: lines.length === 0 ? `${workspaceRelative(path)} is empty` : abridge(lines.join('\n')),
      };
    } catch (err) {
      return guestFailure('list', input.path, err);
    }
  },
};

const searchInput = z
  .object({
    pattern: z.string().min(1).describe('Extended regular expression (grep -E).'),
    path: z
      .string()
      .default('.')
      .describe('File or directory to search, relative to /workspace or absolute.'),
    glob: z.string().optional().describe('Only files whose name matches this glob, e.g. "*.ts".'),
    ignore_case: z.boolean().default(false),
    max_results: z.number().int().positive().max(1000).default(200),
  })
  .strict();
export type SearchFilesInput = z.infer<typeof searchInput>;

/** Parses `file\0line:text` lines, leaving out any file under a withheld entry (defence in depth). */
export function searchMatches(stdout: string, root: string, withheld: readonly string[]): string[] {
  const out: string[] = [];
  for (const line of stdout.split('\n')) {
    const nul = line.indexOf('\0');
    if (nul < 0) continue;
    const file = line.slice(0, nul);
    const below = file === root ? '' : file.startsWith(`${root}/`) ? file.slice(root.length + 1) : undefined;
    if (below === undefined) continue;
    if (
      withheld.some((w) => (w.endsWith('/') ? below.startsWith(w) : below === w || below.startsWith(`${w}/`)))
    )
      continue;
    out.push(`${file.replace(/^\/workspace\//, '')}:${line.slice(nul + 1)}`);
  }
  return out;
}

export const searchFilesTool: Tool<SearchFilesInput, 'files'> = {
  name: 'search_files',
  risk: 'read',
  access: 'files',
  description: 'Search file contents in the VM workspace with grep -E; returns path:line:text matches.',
  input: searchInput,
  describe: (i) => `search_files /${i.pattern}/ in ${i.path}${i.glob ? ` (${i.glob})` : ''}`,
  claim: (i) => ({ kind: 'files', paths: [{ path: guestPath(i.path), access: 'read', scope: 'tree' }] }),
  async run(input, ctx): Promise<ToolResult> {
    // The grant builds the command (every word quoted) and prunes what the decision withholds.
    const result = await ctx.files.search(input, { timeoutMs: 60_000, maxOutputBytes: 1024 * 1024 });
    if (result.timedOut)
      return { content: 'search timed out after 60s; narrow the path or glob', isError: true };
    // With the pipe, the exit status is head's; grep's own errors arrive on stderr.
    const lines = searchMatches(result.stdout, guestPath(input.path), ctx.files.withheld);
    if (lines.length === 0) {
      const err = result.stderr.trim();
      return err
        ? { content: `search failed: ${abridge(err, 2000)}`, isError: true }
        : { content: 'No matches.' };
    }
    const more = lines.length > input.max_results;
    const shown = lines.slice(0, input.max_results);
    return {
      content:
        abridge(shown.join('\n')) +
        (more ? `\n[more than ${input.max_results} matches; narrow the search]` : ''),
    };
  },
};
