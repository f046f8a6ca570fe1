import type { Command } from 'commander';
import { CoworkError } from '../../host/errors.js';
import { action, addExamples, connectController, locate } from '../common.js';

export function register(program: Command): void {
  const cmd = program
    .command('tray')
    .description(
      'Show the sandbox in the desktop tray (StatusNotifierItem): status, pending approvals with Approve/Deny, stop, start',
    )
    .option('-w, --workspace <dir>', 'workspace to follow (default: current directory)')
    .action(
      action(async (flags: { workspace?: string }) => {
        if (!process.env.DBUS_SESSION_BUS_ADDRESS) {
          throw new CoworkError(
            'unavailable',
            'no D-Bus session bus: DBUS_SESSION_BUS_ADDRESS is not set — run `cowork-vm tray` inside your desktop session',
          );
        }
        const [{ startTray }, { locateSandbox, recentWorkspaces }, { hostPaths }, { spawn }] =
          await Promise.all([
            import('../../host/tray/index.js'),
            import('../../host/sandbox/index.js'),
            import('../../host/paths.js'),
            import('node:child_process'),
          ]);
        const loc = await locate(flags.workspace);
        const say = (line: string) => process.stderr.write(`cowork-vm tray: ${line}\n`);
        const runCli = (args: string[]) => {
          const child = spawn(process.execPath, [process.argv[1] ?? 'cowork-vm', ...args], {
            stdio: ['ignore', 'ignore', 'pipe'],
            detached: true,
          });
          let err = '';
          child.stderr?.on('data', (d) => (err += d));
          child.on('exit', (code) => {
            if (code !== 0)
              say(`\`cowork-vm ${args[0]}\` failed: ${err.trim().split('\n').at(-1) ?? `exit ${code}`}`);
          });
          child.unref();
        };
        const tray = await startTray({
          workspace: loc.workspace,
          dashboard: program.commands.some((c) => c.name() === 'dashboard'),
          locate: (ws) => locateSandbox(ws),
          connect: async (ws) => (await connectController(ws)).client,
          recentWorkspaces: () => recentWorkspaces(hostPaths(), 5),
          runCli,
          onLine: say,
        });
        const quit = () => tray.close();
        process.once('SIGINT', quit);
        process.once('SIGTERM', quit);
        const how = await tray.done;
        if (how === 'bus-lost') throw new CoworkError('unavailable', 'the D-Bus session bus went away');
        process.exit(0);
      }),
    );
  addExamples(cmd, [
    'cowork-vm tray                         # follow the sandbox of the current folder',
    'cowork-vm tray --workspace ~/src/app &  # in your session autostart',
  ]);
}
