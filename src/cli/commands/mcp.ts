import type { Command } from 'commander';
import { Option } from '../commander.js';
import { action, addExamples } from '../common.js';

interface McpFlags {
  workspace?: string;
  image?: string;
}

export function register(program: Command): void {
  const cmd = program
    .command('mcp')
    .description(
      "Serve the sandbox's tools to any MCP client over stdio (Claude Code, Claude Desktop, IDE agents): every call runs in the VM",
    )
    .option('-w, --workspace <dir>', 'workspace folder (default: current directory)')
    .addOption(
      new Option(
        '--image <name>',
        'guest image when it has to start the sandbox (browser adds the browser tools)',
      ).choices(['base', 'browser']),
    )
    .action(
      action(async (flags: McpFlags) => {
        const { runMcpServer } = await import('../../host/mcp/index.js');
        await runMcpServer({
          workspace: flags.workspace,
          image: flags.image,
          bin: process.argv[1] ?? '',
          version: program.version() ?? '0.0.0',
        });
        process.exit(0);
      }),
    );
  addExamples(cmd, [
    'claude mcp add cowork-vm -- cowork-vm mcp --workspace ~/src/app',
    'cowork-vm mcp --workspace . --image browser   # what an MCP client runs; stdout is the protocol',
  ]);
}
