import { spawn } from 'node:child_process';
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { CoworkError } from '../../host/errors.js';
import type { ShareMode } from '../../host/vm/driver.js';
import { Option } from '../commander.js';
import { action, addExamples, humanMs, intOption, locate, printJson } from '../common.js';

const READY_MARK = '@@cowork-ready ';

interface StartFlags {
  workspace?: string;
  config?: string;
  cpus?: number;
  memory?: number;
  image?: string;
  accel?: string;
  share?: ShareMode | 'auto';
  warm?: boolean;
  detach?: boolean;
  json?: boolean;
  listen?: string;
  allowRemote?: boolean;
  child?: boolean;
}

export function register(program: Command): void {
  const cmd = program
    .command('start')
    .description('Boot the sandbox for a workspace (default: the current folder) and serve it until stopped')
    .option('-w, --workspace <dir>', 'folder to share read-write at /workspace (default: current directory)')
    .option('-c, --config <file>', 'config file (default: ~/.config/cowork-vm/config.toml)')
    .option('--cpus <n>', 'guest CPUs (1–16, default 2)', intOption('--cpus', 1, 16))
    .option(
      '--memory <mib>',
      'guest memory in MiB (256–16384, default 1024)',
      intOption('--memory', 256, 16384),
    )
    .option('--image <name>', 'guest image variant: base | browser (default base)')
    .option('--accel <accel>', 'accelerator: auto | kvm | hvf | tcg (env COWORK_VM_ACCEL)')
    .addOption(new Option('--share <mode>', 'workspace share').choices(['auto', 'virtiofs', '9p']))
    .option(
      '--warm',
      "restore the image's warm snapshot (cowork-vm image warm) instead of booting; as [vm] warm = true",
    )
    .option('--listen <host:port>', 'turn on the WebSocket control API (dashboard, menubar, paired devices)')
    .option(
      '--allow-remote',
      'allow --listen on a non-loopback address (needs [control] tls = { cert, key } in the config; prints a warning)',
    )
    .option('-d, --detach', 'start in the background and return once the guest is ready')
    .option('--json', 'with --detach: print the status as JSON when ready')
    .addOption(new Option('--child').hideHelp())
    .action(
      action(async (flags: StartFlags, command: Command) => {
        await refuseUnsafeListen(flags);
        return flags.detach && !flags.child ? detach(flags, command) : foreground(flags);
      }),
    );
  addExamples(cmd, [
    'cowork-vm start                 # foreground: live status, approvals prompt here, Ctrl-C stops',
    'cowork-vm start --detach        # background; then: cowork-vm exec -- uname -a',
    'cowork-vm start --workspace ~/src/app --cpus 4 --memory 2048 --accel tcg',
    'cowork-vm start --detach --listen 127.0.0.1:7420   # then: cowork-vm pair',
  ]);
}

/**
 * `--listen` off loopback without TLS (or without --allow-remote) is refused here, before a VM
 * boots or a background child starts; the controller checks again before it binds.
 */
async function refuseUnsafeListen(flags: StartFlags): Promise<void> {
  if (!flags.listen) return;
  const [{ loadConfig }, { assertListenAllowed, isLoopbackHost, parseListen }] = await Promise.all([
    import('../../host/config/load.js'),
    import('../../host/control/index.js'),
  ]);
  if (isLoopbackHost(parseListen(flags.listen).host)) return;
  const { control } = loadConfig({ configFile: flags.config }).config;
  assertListenAllowed({
    listen: flags.listen,
    allowRemote: flags.allowRemote ?? control.allowRemote,
    tls: control.tls,
  });
}

async function foreground(flags: StartFlags): Promise<void> {
  const child = Boolean(flags.child);
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const interactive = !child && process.stdin.isTTY && process.stdout.isTTY;
  const [{ startController }, { parseAccel }] = await Promise.all([
    import('../../host/sandbox/index.js'),
    import('../../host/vm/index.js'),
  ]);
  const running = await startController({
    workspace: flags.workspace,
    configFile: flags.config,
    cpus: flags.cpus,
    memoryMiB: flags.memory,
    image: flags.image,
    accel: flags.accel ? parseAccel(flags.accel, '--accel') : undefined,
    share: flags.share,
    warm: flags.warm,
    onProgress: (l) => say(`… ${l}`),
    onWarning: (w) => say(`warning: ${w}`),
    onNotice: (n) => say(n),
    listen: flags.listen,
    allowRemote: flags.allowRemote,
    terminal: interactive ? { input: process.stdin, output: process.stdout } : undefined,
  });
  const st = await running.controller.status();
  say(
    `${child ? READY_MARK + JSON.stringify(st) + '\n' : ''}● sandbox running for ${st.workspace}\n` +
      `  accel ${st.vm.accel} · share ${st.vm.share} · image ${st.vm.image} · ssh 127.0.0.1:${st.vm.sshPort} · ready in ${humanMs(st.vm.bootMs ?? 0)}\n` +
      (child ? '' : '  Ctrl-C stops it; from another terminal: cowork-vm exec -- CMD'),
  );
  const onSignal = () => void running.shutdown('signal');
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('SIGHUP', onSignal);
  const ticker = interactive ? setInterval(() => void statusLine(running.controller), 5000) : undefined;
  const end = await running.done;
  if (ticker) clearInterval(ticker);
  if (end.reason === 'crashed') {
    const why = end.exit?.reason ?? 'the VM process ended';
    process.stderr.write(`\ncowork-vm: the VM stopped unexpectedly (${why}); workspace files are intact.\n`);
    if (end.exit?.consoleTail) process.stderr.write(`last console lines:\n${end.exit.consoleTail}\n`);
    process.exit(1);
  }
  say('● sandbox stopped');
  process.exit(0);
}

let lastLine = '';
async function statusLine(controller: {
  status(): Promise<{ pendingApprovals: number; tasks: { running: number } }>;
}) {
  const st = await controller.status();
  const line = `● running · ${st.pendingApprovals} pending approval(s) · ${st.tasks.running} task(s)`;
  if (line !== lastLine) {
    lastLine = line;
    process.stdout.write(`${line}\n`);
  }
}

/** Options that concern the parent of a detached start only; the child runs in the foreground of its log. */
const PARENT_ONLY = new Set(['detach', 'json', 'child']);

/**
 * The child's command line, derived from this command's own option table: every option the
 * user gave is passed on as parsed (the workspace resolved), so a new option reaches the child
 * without a hand-written line here, and the child checks each value with the same parsers.
 */
export function childArgs(command: Command, flags: StartFlags, workspace: string): string[] {
  const values = { ...flags, workspace } as Record<string, unknown>;
  const args = ['start', '--child'];
  for (const opt of command.options) {
    const key = opt.attributeName();
    const value = values[key];
    if (PARENT_ONLY.has(key) || value === undefined || value === false || !opt.long) continue;
    args.push(opt.long);
    if (!opt.isBoolean()) args.push(String(value));
  }
  return args;
}

/** `start --detach`: run the controller as a background child and wait until it is ready. */
async function detach(flags: StartFlags, command: Command): Promise<void> {
  const loc = await locate(flags.workspace);
  const { processAlive, readLock } = await import('../../host/sandbox/index.js');
  // Refuse before spawning anything: a second child must not even touch the running one's log.
  const holder = readLock(join(loc.stateDir, 'lock'));
  if (holder && processAlive(holder.pid)) {
    throw new CoworkError(
      'invalidState',
      `a sandbox is already running for ${loc.workspace} (pid ${holder.pid}) — use \`cowork-vm status\` or \`cowork-vm stop\``,
    );
  }
  mkdirSync(loc.stateDir, { recursive: true, mode: 0o700 });
  const logPath = join(loc.stateDir, 'controller.log');
  const fd = openSync(logPath, 'a', 0o600);
  let shown = fstatSync(fd).size; // read only what this start writes
  const args = [process.argv[1] ?? '', ...childArgs(command, flags, loc.workspace)];
  const child = spawn(process.execPath, args, {
    detached: true,
    stdio: ['ignore', fd, fd],
    env: process.env,
  });
  closeSync(fd);
  child.unref();
  let exited: number | undefined;
  child.once('exit', (code) => (exited = code ?? 1));

  const quiet = Boolean(flags.json);
  let partial = '';
  for (;;) {
    await new Promise((r) => setTimeout(r, 250));
    const childDone = exited !== undefined;
    const buf = readFileSync(logPath);
    const text = partial + buf.subarray(shown).toString('utf8');
    shown = buf.length;
    const lines = text.split('\n');
    partial = childDone ? '' : (lines.pop() ?? '');
    for (const line of lines) {
      if (line.startsWith(READY_MARK)) {
        const status = JSON.parse(line.slice(READY_MARK.length));
        if (quiet) printJson(status);
        else {
          process.stdout.write(
            `● sandbox running in the background (pid ${child.pid}) for ${status.workspace}\n` +
              `  accel ${status.vm.accel} · share ${status.vm.share} · ready in ${humanMs(status.vm.bootMs)}\n` +
              `  log: ${logPath}\n  next: cowork-vm exec -- uname -a   ·   cowork-vm stop\n`,
          );
        }
        return;
      }
      if (line.trim() && (!quiet || childDone)) process.stderr.write(`${line}\n`);
    }
    if (childDone) {
      process.stderr.write(`cowork-vm: the sandbox did not start (log: ${logPath})\n`);
      process.exit(exited || 1);
    }
  }
}
