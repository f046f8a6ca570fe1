import { createInterface } from 'node:readline';
import { attachTerminalPrompt, type MemoryApprovalBroker } from '../approvals/index.js';
import { RemoteAccess } from '../channels/index.js';
import type { ResolvedConfig } from '../config/index.js';
import { LocalControlServer } from '../control/local-server.js';
import { ControlStore, defaultControlStorePath } from '../control/store.js';
import { DashboardServer } from '../dashboard/index.js';
import type { HostPaths } from '../paths.js';
import { KeychainSecretStore } from '../secrets/index.js';
import type { Timeline } from '../timeline/index.js';
import type { Controller } from './controller.js';
import type { InFlightRequests } from './drain.js';
import { localHandlers } from './handlers.js';
import type { CleanupStack } from './lifecycle.js';
import { controlSocketPath } from './locate.js';

/*
 * The controller's frontends: the foreground terminal (approvals), the local control socket,
 * the remote access (WebSocket API, Telegram) and the web dashboard. Each registers its own
 * teardown.
 */

/** The foreground terminal as an approval frontend (the `start` terminal, when interactive). */
export function attachTerminal(
  terminal: { input: NodeJS.ReadableStream; output: NodeJS.WritableStream },
  approvals: MemoryApprovalBroker,
  controller: Controller,
  cleanup: CleanupStack,
): void {
  const rl = createInterface({ input: terminal.input, output: terminal.output });
  // On a tty readline reads in raw mode, where Ctrl-C is a byte that readline turns into its
  // own 'SIGINT' event (and, with no listener, swallows by closing itself — so the first
  // Ctrl-C of `cowork-vm start` did nothing). Raise it as the real signal it was meant as.
  rl.on('SIGINT', () => process.kill(process.pid, 'SIGINT'));
  const detach = attachTerminalPrompt({
    broker: approvals,
    rl,
    output: terminal.output,
    answer: (id, answer) => controller.approvalsAnswer(id, answer, { id: 'terminal', context: 'local' }),
  });
  cleanup.push(() => {
    detach();
    rl.close();
  });
}

/** The local control socket (the CLI's way in), its calls tracked for the drain. */
export async function serveLocal(
  stateDir: string,
  controller: Controller,
  inFlight: InFlightRequests,
  cleanup: CleanupStack,
): Promise<{ server: LocalControlServer; socketPath: string }> {
  const socketPath = controlSocketPath(stateDir);
  const server = new LocalControlServer(socketPath, inFlight.wrapHandlers(localHandlers(controller)));
  await server.listen();
  cleanup.push(() => server.close());
  return { server, socketPath };
}

/** Remote control (WebSocket API, Telegram): off unless configured or --listen is given. */
export async function serveRemote(
  ctx: {
    config: ResolvedConfig;
    paths: HostPaths;
    timeline: Timeline;
    /** `--listen HOST:PORT`, over [control] listen. */
    listen?: string;
    allowRemote?: boolean;
    onNotice?: (line: string) => void;
    progress: (line: string) => void;
    cleanup: CleanupStack;
  },
  controller: Controller,
  inFlight: InFlightRequests,
): Promise<RemoteAccess | undefined> {
  const { config } = ctx;
  const listen = ctx.listen ?? config.control.listen;
  if (!listen && !config.channels.telegram.enabled) return undefined;
  const remote = await RemoteAccess.start({
    config,
    api: inFlight.wrapApi(controller),
    paths: ctx.paths,
    recorder: ctx.timeline,
    secrets: new KeychainSecretStore(),
    listen,
    allowRemote: ctx.allowRemote,
    logger: { warn: (m: string) => ctx.onNotice?.(`warning: ${m}`) },
  });
  ctx.cleanup.push(() => remote.close());
  controller.setControlListen(remote.url);
  if (remote.url) ctx.progress(`control API listening on ${remote.url}`);
  return remote;
}

/**
 * The web dashboard (`[dashboard] enabled`, default on): 127.0.0.1 only. It shares the remote
 * access's device store when there is one (so a revoke on either ends sessions on both at once),
 * and otherwise opens the host's store on its first login, not at start.
 */
export async function serveDashboard(
  ctx: {
    config: ResolvedConfig;
    paths: HostPaths;
    timeline: Timeline;
    progress: (line: string) => void;
    cleanup: CleanupStack;
  },
  controller: Controller,
  inFlight: InFlightRequests,
  remote: RemoteAccess | undefined,
): Promise<void> {
  if (!ctx.config.dashboard.enabled) return;
  let own: ControlStore | undefined;
  const devices = (): ControlStore => {
    if (remote) return remote.store;
    own ??= new ControlStore({ file: defaultControlStorePath(ctx.paths), recorder: ctx.timeline });
    return own;
  };
  const server = new DashboardServer({
    api: inFlight.wrapApi(controller),
    devices,
    port: ctx.config.dashboard.port,
    recorder: ctx.timeline,
  });
  const { url } = await server.start();
  ctx.cleanup.push(async () => {
    controller.setDashboard(undefined);
    await server.close();
    own?.close();
  });
  controller.setDashboard(server);
  ctx.progress(`dashboard on ${url} (log in with \`cowork-vm dashboard\`)`);
}
