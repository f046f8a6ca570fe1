import { z } from 'zod';
import { CoworkError } from '../errors.js';
import { listDirectoryTool, readFileTool, searchFilesTool } from './files-read.js';
import { editFileTool, writeFileTool } from './files-write.js';
import { shellTool } from './shell.js';
import { taskCompleteTool } from './task-complete.js';
import type { AnyTool } from './types.js';

/** The tool definition the Messages API takes (`tools[]`). */
export interface ModelToolDefinition {
  name: string;
  description: string;
  input_schema: { type: 'object'; [key: string]: unknown };
}

/** The tools an agent task gets by default (the browser tools join with the browser image). */
export function defaultTools(): AnyTool[] {
  return [
    shellTool,
    readFileTool,
    writeFileTool,
    editFileTool,
    listDirectoryTool,
    searchFilesTool,
    taskCompleteTool,
  ];
}

/** The JSON schema the model sees, generated from the tool's zod input schema. */
export function toolJsonSchema(tool: AnyTool): ModelToolDefinition['input_schema'] {
  const schema = z.toJSONSchema(tool.input, { io: 'input' }) as Record<string, unknown>;
  const { $schema: _ignored, ...rest } = schema;
  if (rest.type !== 'object') {
    throw new CoworkError('internal', `tool ${tool.name}: input schema must be a zod object`);
  }
  return rest as ModelToolDefinition['input_schema'];
}

/** A fixed set of tools, looked up by name; names are unique. */
export class ToolRegistry {
  readonly #tools = new Map<string, AnyTool>();

  constructor(tools: AnyTool[] = defaultTools()) {
    for (const tool of tools) {
      if (!/^[a-zA-Z0-9_-]{1,64}$/.test(tool.name)) {
        throw new CoworkError(
          'invalidArgument',
          `tool name "${tool.name}" is not valid for the Messages API`,
        );
      }
      if (this.#tools.has(tool.name)) {
        throw new CoworkError('invalidArgument', `tool "${tool.name}" is registered twice`);
      }
      this.#tools.set(tool.name, tool);
    }
  }

  get(name: string): AnyTool | undefined {
    return this.#tools.get(name);
  }

  names(): string[] {
    return [...this.#tools.keys()];
  }

  definitions(): ModelToolDefinition[] {
    return [...this.#tools.values()].map((t) => ({
      name: t.name,
      description: t.description,
      input_schema: toolJsonSchema(t),
    }));
  }
}
