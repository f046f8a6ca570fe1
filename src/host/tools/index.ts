export { abridge, MODEL_OUTPUT_CHARS } from './abridge.js';
export { listDirectoryTool, readFileTool, searchCommand, searchFilesTool } from './files-read.js';
export { editFileTool, writeFileTool } from './files-write.js';
export { GUEST_WORKSPACE, guestPath, shellQuote, workspaceRelative } from './guest-path.js';
export { defaultTools, type ModelToolDefinition, ToolRegistry, toolJsonSchema } from './registry.js';
export { DEFAULT_SHELL_TIMEOUT_S, formatExecResult, shellTool } from './shell.js';
export { taskCompleteTool } from './task-complete.js';
export type {
  AnyTool,
  AuthorizeOutcome,
  ShellExecOptions,
  Tool,
  ToolContext,
  ToolEvent,
  ToolResult,
} from './types.js';
