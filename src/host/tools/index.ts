export { abridge, MODEL_OUTPUT_CHARS } from './abridge.js';
export { type BrowserHandle, type BrowserPage, browserHandle } from './browser-handle.js';
export { guestFailure, runToolCall } from './call.js';
export { listDirectoryTool, readFileTool, searchCommand, searchFilesTool } from './files-read.js';
export { editFileTool, writeFileTool } from './files-write.js';
export {
  type GuestFileGrant,
  type GuestFiles,
  mkdirCommand,
  type SearchSpec,
  scopeGuestFiles,
} from './guest-files.js';
export { GUEST_WORKSPACE, guestPath, shellQuote, workspaceRelative } from './guest-path.js';
export { defaultTools, type ModelToolDefinition, ToolRegistry, toolJsonSchema } from './registry.js';
export { DEFAULT_SHELL_TIMEOUT_S, formatExecResult, shellTool } from './shell.js';
export { taskCompleteTool } from './task-complete.js';
export type {
  AnyTool,
  ClaimEnv,
  ShellExecOptions,
  ShellHandle,
  TaskBrowser,
  Tool,
  ToolAccess,
  ToolAuthorization,
  ToolCallContext,
  ToolClaim,
  ToolContext,
  ToolEvent,
  ToolGate,
  ToolPath,
  ToolPolicyRequest,
  ToolResult,
  UrlCheck,
} from './types.js';
