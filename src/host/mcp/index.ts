import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { BROWSER_TOOLS } from '../tools/browser.js';
import { defaultTools } from '../tools/registry.js';
import { attachController } from './attach.js';
import { McpBridge } from './server.js';
import { toolListing } from './tool-list.js';

export { budgetText, type CallFacts, deniedAdvice, failureText } from './advice.js';
export { type AttachOptions, attachController } from './attach.js';
export { McpBridge, type McpBridgeOptions, PROGRESS_INTERVAL_MS } from './server.js';
export { ToolSessions, type ToolSessionsOptions } from './sessions.js';
export { mcpOrigin, NOT_FOR_OUTSIDE_AGENTS, outsideAgentTools, toolListing } from './tool-list.js';

export interface McpServerOptions {
  workspace?: string;
  image?: string;
  /** The `cowork-vm` script (to start the sandbox when none runs). */
  bin: string;
  version: string;
}

/**
 * `cowork-vm mcp`: the MCP server on this process's stdin/stdout. stdout carries only the
 * protocol, so everything else that might print there is sent to stderr first. The process
 * ends when the client closes stdin; its tool session ends with it.
 */
export async function runMcpServer(opts: McpServerOptions): Promise<void> {
  const toStderr = (...args: unknown[]) => console.error(...args);
  console.log = toStderr;
  console.info = toStderr;
  console.debug = toStderr;
  const log = (line: string) => process.stderr.write(`cowork-vm mcp: ${line}\n`);
  const bridge = new McpBridge({
    version: opts.version,
    log,
    attach: async () =>
      (await attachController({ workspace: opts.workspace, image: opts.image, bin: opts.bin, log })).client,
    // While the sandbox boots: the tools of the image it is started with (the running one's once attached).
    toolsBeforeReady: () =>
      toolListing(opts.image === 'browser' ? [...defaultTools(), ...BROWSER_TOOLS] : defaultTools()),
  });
  const transport = new StdioServerTransport();
  const ended = new Promise<void>((resolve) => {
    process.stdin.once('end', resolve);
    process.stdin.once('close', resolve);
    transport.onclose = () => resolve();
  });
  await bridge.server.connect(transport);
  bridge.warmUp();
  await ended;
  await bridge.close();
}
