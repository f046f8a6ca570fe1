import { z } from 'zod';
import { CoworkError } from '../errors.js';
import { bytesOfMB } from './abridge.js';
import { guestFailure } from './call.js';
import { guestPath, workspaceRelative } from './guest-path.js';
import type { Tool, ToolResult } from './types.js';

function tooLarge(path: string, bytes: number, maxMB: number): ToolResult {
  return {
    content: `Refused: the new content of ${path} would be ${bytes} bytes, over the ${maxMB} MB file limit. Nothing was written.`,
    isError: true,
  };
}

function writeFailure(path: string, err: unknown): ToolResult {
  if (err instanceof CoworkError && err.code === 'denied')
    return { content: `Denied: ${err.message}. Nothing was written.`, isError: true, denied: true };
  return guestFailure('write', path, err);
}

const writeInput = z
  .object({
    path: z.string().min(1).describe('File path, relative to /workspace or absolute.'),
    content: z.string().describe('The complete new content of the file.'),
  })
  .strict();
export type WriteFileInput = z.infer<typeof writeInput>;

export const writeFileTool: Tool<WriteFileInput, 'files'> = {
  name: 'write_file',
  risk: 'write',
  access: 'files',
  description: 'Create or overwrite a file in the VM workspace with the given content (parents are created).',
  input: writeInput,
  describe: (i) => `write_file ${i.path} (${Buffer.byteLength(i.content)} bytes)`,
  // Too large is refused before anyone is asked to approve it.
  precheck: (i, { maxFileSizeMB }) => {
    const bytes = Buffer.byteLength(i.content);
    return bytes > bytesOfMB(maxFileSizeMB) ? tooLarge(i.path, bytes, maxFileSizeMB) : undefined;
  },
  claim: (i) => ({ kind: 'files', paths: [{ path: guestPath(i.path), access: 'write' }] }),
  async run(input, ctx): Promise<ToolResult> {
    const path = guestPath(input.path);
    const bytes = Buffer.byteLength(input.content);
    try {
      // Parent folders are created in the guest; the path guard runs again right before.
      await ctx.files.writeFile(path, input.content);
    } catch (err) {
      return writeFailure(input.path, err);
    }
    return { content: `Wrote ${bytes} bytes to ${input.path}.`, filesChanged: [workspaceRelative(path)] };
  },
};

const editInput = z
  .object({
    path: z.string().min(1).describe('File path, relative to /workspace or absolute.'),
    old_string: z
      .string()
      .min(1)
      .describe('Exact text to replace; must occur exactly once unless replace_all.'),
    new_string: z.string().describe('Replacement text.'),
    replace_all: z.boolean().default(false).describe('Replace every occurrence instead of exactly one.'),
  })
  .strict();
export type EditFileInput = z.infer<typeof editInput>;

function countOccurrences(haystack: string, needle: string): number {
  let n = 0;
  for (let i = haystack.indexOf(needle); i !== -1; i = haystack.indexOf(needle, i + needle.length)) n++;
  return n;
}

export const editFileTool: Tool<EditFileInput, 'files'> = {
  name: 'edit_file',
  risk: 'write',
  access: 'files',
  description:
    'Replace an exact string in a file in the VM workspace. old_string must match exactly once (include ' +
    'surrounding lines to make it unique) unless replace_all is true.',
  input: editInput,
  describe: (i) => `edit_file ${i.path}${i.replace_all ? ' (all occurrences)' : ''}`,
  claim: (i) => ({ kind: 'files', paths: [{ path: guestPath(i.path), access: 'edit' }] }),
  async run(input, ctx): Promise<ToolResult> {
    const path = guestPath(input.path);
    const max = bytesOfMB(ctx.maxFileSizeMB);
    let text: string;
    try {
      const st = await ctx.files.stat(path);
      if (st.size > max) return tooLarge(input.path, st.size, ctx.maxFileSizeMB);
      text = (await ctx.files.readFile(path, { maxBytes: max })).toString('utf8');
    } catch (err) {
      return guestFailure('read', input.path, err);
    }
    const count = countOccurrences(text, input.old_string);
    if (count === 0) {
      return {
        content: `old_string was not found in ${input.path}; read the file and copy the text exactly.`,
        isError: true,
      };
    }
    if (count > 1 && !input.replace_all) {
      return {
        content: `old_string occurs ${count} times in ${input.path}; add surrounding lines to make it unique, or set replace_all.`,
        isError: true,
      };
    }
    const updated = input.replace_all
      ? text.split(input.old_string).join(input.new_string)
      : text.replace(input.old_string, () => input.new_string);
    const bytes = Buffer.byteLength(updated);
    if (bytes > max) return tooLarge(input.path, bytes, ctx.maxFileSizeMB);
    try {
      await ctx.files.writeFile(path, updated);
    } catch (err) {
      return writeFailure(input.path, err);
    }
    return {
      content: `Replaced ${count} occurrence${count === 1 ? '' : 's'} in ${input.path}.`,
      filesChanged: [workspaceRelative(path)],
    };
  },
};
