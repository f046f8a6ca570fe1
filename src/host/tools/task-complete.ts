import { z } from 'zod';
import type { Tool, ToolResult } from './types.js';

const completeInput = z
  .object({ summary: z.string().min(1).describe('What was done and what the user should know.') })
  .strict();
export type TaskCompleteInput = z.infer<typeof completeInput>;

/** Ends the task. It touches nothing, so it needs no policy decision. */
export const taskCompleteTool: Tool<TaskCompleteInput, 'none'> = {
  name: 'task_complete',
  risk: 'read',
  access: 'none',
  description:
    'Call when the task is done (or cannot be done), with a short summary for the user. Ends the task.',
  input: completeInput,
  describe: (i) => `task_complete: ${i.summary.split('\n')[0]}`,
  claim: () => ({ kind: 'none' }),
  async run(input): Promise<ToolResult> {
    return { content: 'Task marked complete.', endTask: { summary: input.summary } };
  },
};
