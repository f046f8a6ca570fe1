import { z } from 'zod';
import { abridge, bytesOfMB } from './abridge.js';
import { authorizeFileTool, guestFailure } from './authorize.js';
import { guestPath, shellQuote, workspaceRelative } from './guest-path.js';
import type { Tool, ToolResult } from './types.js';

const readInput = z
  .object({
    path: z.string().min(1).describe('File path, relative to /workspace or absolute.'),
    offset: z.number().int().positive().optional().describe('First line to return (1-based).'),
    limit: z.number().int().positive().optional().describe('Maximum number of lines to return.'),
  })
  .strict();
export type ReadFileInput = z.infer<typeof readInput>;

export const readFileTool: Tool<ReadFileInput> = {
  name: 'read_file',
  risk: 'read',
  description: 'Read a text file in the VM workspace. Use offset/limit for long files.',
  input: readInput,
  describe: (i) =>
    `read_file ${i.path}${i.offset || i.limit ? ` (lines ${i.offset ?? 1}+${i.limit ?? ''})` : ''}`,
  paths: (i) => [{ path: guestPath(i.path), access: 'read' }],
  async run(input, ctx): Promise<ToolResult> {
    const path = guestPath(input.path);
    const denied = await authorizeFileTool(readFileTool, input, readFileTool.paths!(input), ctx);
    if (denied) return denied;
    const max = bytesOfMB(ctx.maxFileSizeMB);
    let data: Buffer;
    try {
      const st = await ctx.session.stat(path);
      if (st.type === 'directory')
        return { content: `${input.path} is a directory — use list_directory`, isError: true };
      if (st.size > max) {
        return {
          content: `${input.path} is ${st.size} bytes, over the ${ctx.maxFileSizeMB} MB file limit; read parts of it with shell tools (head, sed -n).`,
          isError: true,
        };
      }
      data = await ctx.session.readFile(path, { maxBytes: max });
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

export const listDirectoryTool: Tool<ListDirectoryInput> = {
  name: 'list_directory',
  risk: 'read',
  description: 'List a directory in the VM workspace (names, "/" after directories, sizes of files).',
  input: listInput,
  describe: (i) => `list_directory ${i.path}`,
  paths: (i) => [{ path: guestPath(i.path), access: 'read' }],
  async run(input, ctx): Promise<ToolResult> {
    const path = guestPath(input.path);
    const denied = await authorizeFileTool(listDirectoryTool, input, listDirectoryTool.paths!(input), ctx);
    if (denied) return denied;
    try {
      const entries = await ctx.session.list(path);
      entries.sort((a, b) => a.name.localeCompare(b.name));
      const lines = entries.map((e) =>
        e.type === 'directory'
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

/** The grep command line run in the guest; every model-supplied word is quoted. */
export function searchCommand(input: SearchFilesInput): string {
  const words = ['grep', '-rnIE', '--color=never'];
  if (input.ignore_case) words.push('-i');
  if (input.glob) words.push(`--include=${shellQuote(input.glob)}`);
  words.push('-e', shellQuote(input.pattern), '--', shellQuote(guestPath(input.path)));
  return `${words.join(' ')} | head -n ${input.max_results + 1}`;
}

export const searchFilesTool: Tool<SearchFilesInput> = {
  name: 'search_files',
  risk: 'read',
  description: 'Search file contents in the VM workspace with grep -E; returns path:line:text matches.',
  input: searchInput,
  describe: (i) => `search_files /${i.pattern}/ in ${i.path}${i.glob ? ` (${i.glob})` : ''}`,
  paths: (i) => [{ path: guestPath(i.path), access: 'read' }],
  async run(input, ctx): Promise<ToolResult> {
    const denied = await authorizeFileTool(searchFilesTool, input, searchFilesTool.paths!(input), ctx);
    if (denied) return denied;
    const result = await ctx.session.exec(searchCommand(input), {
      cwd: '/workspace',
      timeoutMs: 60_000,
      maxOutputBytes: 1024 * 1024,
      signal: ctx.signal,
    });
    if (result.timedOut)
      return { content: 'search timed out after 60s; narrow the path or glob', isError: true };
    // With the pipe, the exit status is head's; grep's own errors arrive on stderr.
    const lines = result.stdout.split('\n').filter((l) => l !== '');
    if (lines.length === 0) {
      const err = result.stderr.trim();
      return err
        ? { content: `search failed: ${abridge(err, 2000)}`, isError: true }
        : { content: 'No matches.' };
    }
    const more = lines.length > input.max_results;
    const shown = lines.slice(0, input.max_results).map((l) => l.replace(/^\/workspace\//, ''));
    return {
      content:
        abridge(shown.join('\n')) +
        (more ? `\n[more than ${input.max_results} matches; narrow the search]` : ''),
    };
  },
};
