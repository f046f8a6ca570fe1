import type { Command } from 'commander';
import { CoworkError } from '../../host/errors.js';
import { Option } from '../commander.js';
import { action, addExamples, connectController, printJson } from '../common.js';

interface DashboardFlags {
  workspace?: string;
  printUrl?: boolean;
  role?: 'viewer' | 'operator' | 'admin';
  json?: boolean;
}

/** `cowork-vm dashboard`: a one-time login link from the running controller, opened in the browser. */
export function register(program: Command): void {
  const cmd = program
    .command('dashboard')
    .description(
      "Open the sandbox's web dashboard in the default browser (a one-time login link, valid 5 minutes)",
    )
    .option('-w, --workspace <dir>', 'workspace folder (default: current directory)')
    .option('--print-url', 'print the login link instead of opening a browser')
    .addOption(
      new Option('--role <role>', 'log in with a lower role (a revocable device "dashboard (<role>)")')
        .choices(['viewer', 'operator', 'admin'])
        .default('admin'),
    )
    .option('--json', 'print {url, expiresAt} instead of opening a browser')
    .action(action(dashboardCommand));
  addExamples(cmd, [
    'cowork-vm dashboard',
    'cowork-vm dashboard --print-url            # e.g. to open it in another browser profile',
    'cowork-vm dashboard --role viewer --print-url   # a read-only session for a screen share',
  ]);
}

async function dashboardCommand(flags: DashboardFlags): Promise<void> {
  const { client } = await connectController(flags.workspace);
  let login: { url: string; expiresAt: number };
  try {
    login = await client.call('dashboard.login', { role: flags.role ?? 'admin' });
  } finally {
    client.close();
  }
  if (flags.json) return printJson(login);
  if (flags.printUrl) return void process.stdout.write(`${login.url}\n`);
  await openInBrowser(login.url);
  process.stdout.write('opened the dashboard in your browser (the link works once)\n');
}

/** What opens a URL in the user's default browser (xdg-open: scripts/host-requirements.tsv). */
const OPENERS: Partial<Record<NodeJS.Platform, string>> = { darwin: 'open', linux: 'xdg-open' };

/** The user's default browser, started with the URL as one argument (never through a shell). */
async function openInBrowser(url: string): Promise<void> {
  const opener = OPENERS[process.platform];
  if (!opener) {
    throw new CoworkError(
      'unsupported',
      `no browser opener is known on ${process.platform}; run \`cowork-vm dashboard --print-url\` and open the link yourself`,
    );
  }
  const { spawn } = await import('node:child_process');
  const child = spawn(opener, [url], { stdio: 'ignore', detached: true });
  await new Promise<void>((resolve, reject) => {
    child.once('error', (err) =>
      reject(
        new CoworkError(
          'unavailable',
          `cannot open a browser (${err.message}); run \`cowork-vm dashboard --print-url\` and open the link yourself`,
          err,
        ),
      ),
    );
    child.once('spawn', () => {
      child.unref();
      resolve();
    });
  });
}
