#!/usr/bin/env node
// `npm run bench`: measures cowork-vm against a baseline taken in the same run and prints the
// ratios. Progress goes to stderr; the results table goes to stdout. Imports the compiled code
// in dist/ (npm run bench builds first). Needs the base image (`cowork-vm image build base`),
// qemu-system-x86_64, virtiofsd, busybox-static and an OpenSSH client. TCG is forced.
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { benchEgress, benchGuestConnections } from '../dist/host/egress/bench.js';
import { benchPolicy } from '../dist/host/policy/bench.js';
import { bootStepShares } from '../dist/host/vm/boot-steps.js';
import { bootBare, writeBareInitramfs } from './bench/bare-boot.js';
import { checkBenchOutput } from './bench/check.js';
import { benchCheckpoints } from './bench/checkpoints.js';
import { timeCliExec, timeCliStartup } from './bench/cli.js';
import {
  bootSandbox,
  IO_BYTES,
  takeWarmSnapshot,
  timeControllerExec,
  timeFreshSsh,
  timeSessionExec,
  timeShareIo,
} from './bench/sandbox.js';
import { median, mibps, ms, quantile, ratio, table } from './bench/stats.js';

const BOOTS = 3;
const EXEC_RUNS = 200;
const SSH_RUNS = 20;
const IO_RUNS = 3;
const CLI_RUNS = 20;

const t0 = performance.now();
const log = (line) =>
  process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

const live = new Set();
/** The guest's boot step breakdowns, printed under the table. */
const stepLines = [];
const tmp = mkdtempSync(join(tmpdir(), 'cvm-bench-bare-'));
async function cleanupAll() {
  for (const sb of live) await sb.dispose();
  live.clear();
  rmSync(tmp, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    log(`${sig}: stopping sandboxes`);
    void cleanupAll().finally(() => process.exit(130));
  });
}

async function boot(share, label, warm = false) {
  log(`${label}: ${warm ? 'restoring' : 'booting'} a sandbox (share ${share})`);
  const sb = await bootSandbox({ share, warm, log: (l) => log(l) });
  live.add(sb);
  sb.dispose = ((inner) => async () => {
    live.delete(sb);
    await inner();
  })(sb.dispose);
  log(
    `${label}: ready in ${ms(sb.readyMs)} (sandbox bootMs ${sb.running.sandbox.info.bootMs}, share ${sb.like.shareMode})`,
  );
  return sb;
}

async function bare(like, initrd, n) {
  const r = await bootBare(like, tmp, initrd, n);
  log(
    `bare boot ${n}: first userspace line after ${ms(r.ms)}, first kernel line after ${ms(r.firstLineMs)} (share device ${like.shareMode})`,
  );
  return r;
}

function ioRows(label, io) {
  const gw = median(io.guest.write);
  const gr = median(io.guest.read);
  const hw = median(io.host.write);
  const hr = median(io.host.read);
  const mb = (v) => `${mibps(IO_BYTES, v).toFixed(0)} MiB/s`;
  const note = `median of ${io.guest.write.length}, dd bs=1M, timed by dd`;
  return [
    [
      `64 MiB write (${label}, conv=fsync)`,
      `${mb(gw)} (${ms(gw)})`,
      `${mb(hw)} (${ms(hw)}) host disk`,
      ratio(gw, hw) + ' slower',
      note,
    ],
    [
      `64 MiB read (${label})`,
      `${mb(gr)} (${ms(gr)})`,
      `${mb(hr)} (${ms(hr)}) host disk`,
      ratio(gr, hr) + ' slower',
      note,
    ],
  ];
}

/**
 * "warm start": ready after restoring the image's warm snapshot, against the cold boots of this
 * run (same sandbox settings; the restored guest shares the workspace over 9p).
 */
async function warmStartRow(coldMs, coldShare, cold9pMs) {
  log('warm start: taking the warm snapshot (cowork-vm image warm)');
  const snap = await takeWarmSnapshot({ log });
  log(`warm snapshot ${snap.key}: ${(snap.bytes / 1024 / 1024).toFixed(0)} MiB in ${ms(snap.bootMs)}`);
  const ready = [];
  for (let i = 1; i <= BOOTS; i++) {
    const sb = await boot('auto', `warm start ${i}/${BOOTS}`, true);
    const { start, startReason, bootSteps } = sb.running.sandbox.info;
    if (i === BOOTS)
      stepLines.push(stepsLine(`boot steps, warm start ${i}/${BOOTS} (${ms(sb.readyMs)})`, bootSteps));
    await sb.dispose();
    if (start !== 'warm') throw new Error(`warm start ${i} booted cold: ${startReason}`);
    ready.push(sb.readyMs);
  }
  const warm = median(ready);
  const faster = warm <= coldMs;
  return [
    'warm start',
    ms(warm),
    `${ms(coldMs)} cold boot (share ${coldShare})`,
    `${faster ? ratio(coldMs, warm) : ratio(warm, coldMs)} ${faster ? 'faster' : 'slower'}`,
    `median of ${BOOTS}; ready = SSH session open; ${ready.map(ms).join(', ')}; ` +
      `cold 9p ${ms(cold9pMs)} (${ratio(cold9pMs, warm)}); snapshot ${(snap.bytes / 1024 / 1024).toFixed(0)} MiB, taken in ${ms(snap.bootMs)}`,
  ];
}

/**
 * Where one boot's time went, from the guest's COWORK-TIME line: each step's end in seconds of
 * guest uptime and its own share. A restored guest's list starts at "go".
 */
function stepsLine(label, steps) {
  if (!steps) return `${label}: the guest printed no COWORK-TIME line`;
  const parts = bootStepShares(steps).map(
    ({ name, end, share }) => `${name} ${end.toFixed(2)} (+${share.toFixed(2)})`,
  );
  return `${label}, guest uptime in s (step +its share): ${parts.join(', ')}`;
}

/** How the session ran the commands: the exec service, or sshd sessions and why. */
function execPathNote(sb) {
  const p = sb.running.sandbox.session.execPath;
  if (!p) return 'unknown';
  return p.mode === 'execd' ? 'exec service' : `one sshd session each: ${p.reason}`;
}

async function main() {
  const startLoad = load();
  log(`${availableParallelism()} CPUs, load average ${startLoad}`);
  const initrd = writeBareInitramfs(tmp);
  const rows = [];

  log(`cowork-vm --version vs node -e 0, x${CLI_RUNS} each`);
  const startup = await timeCliStartup(CLI_RUNS);
  const v50 = median(startup.cli);
  const n50 = median(startup.node);
  rows.push([
    'cowork-vm --version (new process)',
    ms(v50),
    `${ms(n50)} node -e 0`,
    ratio(v50, n50),
    `median of ${CLI_RUNS}, interleaved; goal <= 2x (loads only the parser)`,
  ]);

  // Host only, before any guest boots: checkpoints against plain git on the same tree.
  rows.push(...(await benchCheckpoints(log)));

  // Boots interleaved (sandbox, bare, sandbox, bare, bare, sandbox) so a change in the machine's
  // load during the run hits both sides; only one guest runs at a time.
  const sandboxBoots = [];
  const bareBoots = [];
  let sb = await boot('virtiofs', 'boot 1/3');
  sandboxBoots.push(sb);
  const like = sb.like;
  await sb.dispose();
  bareBoots.push(await bare(like, initrd, 1));
  sb = await boot('virtiofs', 'boot 2/3');
  sandboxBoots.push(sb);
  await sb.dispose();
  bareBoots.push(await bare(like, initrd, 2));
  bareBoots.push(await bare(like, initrd, 3));
  sb = await boot('virtiofs', 'boot 3/3');
  sandboxBoots.push(sb);
  const sReady = sandboxBoots.map((b) => b.readyMs);
  const medianBoot = [...sandboxBoots].sort((a, b) => a.readyMs - b.readyMs)[1];
  stepLines.push(
    stepsLine(
      `boot steps, cold (${like.shareMode}, median boot ${ms(medianBoot.readyMs)})`,
      medianBoot.running.sandbox.info.bootSteps,
    ),
  );
  const bReady = bareBoots.map((b) => b.ms);
  const sFirst = median(sandboxBoots.map((b) => b.firstLineMs ?? Number.NaN));
  const bFirst = median(bareBoots.map((b) => b.firstLineMs));
  rows.push([
    `boot to ready (share ${like.shareMode})`,
    ms(median(sReady)),
    `${ms(median(bReady))} bare kernel+busybox`,
    ratio(median(sReady), median(bReady)),
    `median of ${BOOTS}; ready = SSH session open / bare = first userspace line; ` +
      `sandbox ${sReady.map(ms).join(', ')}; bare ${bReady.map(ms).join(', ')}`,
  ]);
  rows.push([
    '  of which: to first kernel line',
    ms(sFirst),
    `${ms(bFirst)} bare`,
    ratio(sFirst, bFirst),
    'launch (image check, keys, virtiofsd, QEMU) until the kernel prints; median',
  ]);

  log(`exec true x${EXEC_RUNS} over the persistent session`);
  const warm = await timeSessionExec(sb, EXEC_RUNS);
  log(`exec true x${EXEC_RUNS} through Controller.exec (policy + timeline)`);
  const ctl = await timeControllerExec(sb, EXEC_RUNS);
  log(`cowork-vm exec -- true x${CLI_RUNS} (a new CLI process each)`);
  const cliExec = await timeCliExec(sb, CLI_RUNS);
  log(`fresh ssh process x${SSH_RUNS}`);
  const fresh = await timeFreshSsh(sb, SSH_RUNS);
  const f50 = quantile(fresh, 0.5);
  const f99 = quantile(fresh, 0.99);
  rows.push([
    'exec true p50 (GuestSession)',
    ms(quantile(warm, 0.5)),
    `${ms(f50)} fresh ssh`,
    ratio(f50, quantile(warm, 0.5)) + ' faster',
    `${EXEC_RUNS} warm runs back to back (path: ${execPathNote(sb)}) vs ${SSH_RUNS} fresh OpenSSH processes`,
  ]);
  rows.push([
    'exec true p99 (GuestSession)',
    ms(quantile(warm, 0.99)),
    `${ms(f99)} fresh ssh`,
    ratio(f99, quantile(warm, 0.99)) + ' faster',
    `p99 of ${SSH_RUNS} = their max`,
  ]);
  if (ctl.samples) {
    const c50 = quantile(ctl.samples, 0.5);
    rows.push([
      'exec true p50 (Controller.exec)',
      ms(c50),
      `${ms(f50)} fresh ssh`,
      ratio(f50, c50) + ' faster',
      `+policy decision +timeline; p99 ${ms(quantile(ctl.samples, 0.99))}`,
    ]);
    const x50 = quantile(cliExec, 0.5);
    rows.push([
      'exec true p50 (CLI: cowork-vm exec)',
      ms(x50),
      `${ms(c50)} Controller.exec`,
      `+${ms(x50 - c50)}`,
      `new process + socket + Controller.exec; goal <= +100 ms; fresh ssh ${ms(f50)} (${ratio(f50, x50)} slower)`,
    ]);
  } else {
    log(`Controller.exec skipped: ${ctl.skipped}`);
  }

  log('new guest connections to the egress proxy');
  const { sandbox } = sb.running;
  const guestEgress = await benchGuestConnections({
    exec: (command, opts) => sandbox.session.exec(command, opts),
    guestProxyUrl: sandbox.info.guestProxyUrl,
    hostProxyPort: sandbox.opts.egress.hostPort,
  });

  log(`64 MiB dd x${IO_RUNS} through ${sb.like.shareMode}`);
  rows.push(...ioRows(sb.like.shareMode, await timeShareIo(sb, IO_RUNS)));
  await sb.dispose();

  const sb9 = await boot('9p', 'boot 9p');
  const bare9 = await bare({ ...like, shareMode: '9p' }, initrd, 4);
  rows.push([
    `boot to ready (share ${sb9.like.shareMode})`,
    ms(sb9.readyMs),
    `${ms(bare9.ms)} bare kernel+busybox`,
    ratio(sb9.readyMs, bare9.ms),
    `one run each; first kernel line ${ms(sb9.firstLineMs)} vs ${ms(bare9.firstLineMs)} bare`,
  ]);
  log(`64 MiB dd x${IO_RUNS} through ${sb9.like.shareMode}`);
  rows.push(...ioRows(sb9.like.shareMode, await timeShareIo(sb9, IO_RUNS)));
  await sb9.dispose();

  rows.push(await warmStartRow(median(sReady), like.shareMode, sb9.readyMs));

  log('policy bench');
  const policy = await benchPolicy();
  log('egress bench');
  const egress = await benchEgress();
  egress.lines.push(guestEgress.line);

  const header = ['measurement', 'cowork-vm', 'baseline (same run)', 'ratio', 'notes'];
  const problems = checkBenchOutput({ header, rows, policy: policy.lines, egress: egress.lines });
  const out = [
    `cowork-vm bench — ${new Date().toISOString()}, ${availableParallelism()} CPUs, accel tcg, ` +
      `guest ${like.cpus} vCPU / ${like.memoryMiB} MiB, load average ${startLoad} at start, ${load()} at end`,
    '',
    table(header, rows),
    '',
    ...stepLines,
    '',
    ...policy.lines,
    ...egress.lines,
    '',
    `total ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  if (problems.length) {
    for (const p of problems) log(`output check: ${p}`);
    throw new Error(
      `${problems.length} result(s) above are missing or malformed — the bench or a module it times changed`,
    );
  }
}

try {
  await main();
  await cleanupAll();
} catch (err) {
  log(`failed: ${err?.message ?? err}`);
  await cleanupAll();
  process.exitCode = 1;
}
