#!/usr/bin/env node
// `npm run bench:share`: the workspace share's knobs, each measured in one run against the host
// disk (issue 18, goal 4). One guest per setting (TCG, 2 vCPU / 1 GiB, base image), one at a
// time; 64 MiB written (dd, 1 MiB blocks, conv=fsync) and read back, 3 times each, timed by dd.
// Imports dist/ (npm run bench:share builds first). Prints a table to stdout, progress to stderr.
import { rmSync } from 'node:fs';
import { hostPaths, sandboxStateDir } from '../../dist/host/paths.js';
import { Sandbox } from '../../dist/host/sandbox/sandbox.js';
import { createDriver } from '../../dist/host/vm/index.js';
import { benchRoot, IO_BYTES, timeShareIo } from './sandbox.js';
import { median, mibps, ratio, table } from './stats.js';

const RUNS = 3;

/**
 * The settings measured. Coherent = a file the host changes is what the guest's next command
 * reads, and the reverse (tests/integration/share-coherence.test.ts checks the default).
 */
const VARIANTS = [
  { label: 'virtiofs cache=none (default)', share: 'virtiofs', tuning: {}, coherent: 'yes' },
  {
    label: 'virtiofs cache=none, thread pool 4',
    share: 'virtiofs',
    tuning: { virtiofsThreadPoolSize: 4 },
    coherent: 'yes',
  },
  {
    label: 'virtiofs cache=none, queue 1024',
    share: 'virtiofs',
    tuning: { virtiofsQueueSize: 1024 },
    coherent: 'yes',
  },
  {
    label: 'virtiofs cache=auto, timeout=0',
    share: 'virtiofs',
    tuning: { virtiofsCache: 'auto', virtiofsTimeoutS: 0 },
    coherent: 'on open (page cache dropped at each open; attributes never cached)',
  },
  {
    label: 'virtiofs cache=always',
    share: 'virtiofs',
    tuning: { virtiofsCache: 'always' },
    coherent: 'no (attributes and pages cached for a day)',
  },
  { label: '9p msize=512 KiB cache=none (default 9p)', share: '9p', tuning: {}, coherent: 'yes' },
];

const log = (l) => process.stderr.write(`[bench:share] ${l}\n`);

async function measure(v) {
  const { root, workspace, env } = benchRoot('cvm-share-');
  const paths = hostPaths(env);
  let sandbox;
  try {
    sandbox = await Sandbox.start({
      workspace,
      stateDir: sandboxStateDir(paths, workspace),
      paths,
      driver: await createDriver(process.platform, { paths }),
      image: 'base',
      cpus: 2,
      memoryMiB: 1024,
      accel: 'tcg',
      share: v.share,
      shareTuning: v.tuning,
    });
    if (sandbox.info.share !== v.share) throw new Error(`${v.label}: the guest got ${sandbox.info.share}`);
    return await timeShareIo({ running: { sandbox }, workspace }, RUNS);
  } finally {
    await sandbox?.stop().catch(() => {});
    rmSync(root, { recursive: true, force: true });
  }
}

const rows = [];
for (const v of VARIANTS) {
  log(`${v.label}: booting, then dd x${RUNS}`);
  const io = await measure(v);
  const mb = (t) => `${mibps(IO_BYTES, t).toFixed(0)} MiB/s`;
  const [gw, gr, hw, hr] = [io.guest.write, io.guest.read, io.host.write, io.host.read].map(median);
  rows.push([
    v.label,
    mb(gw),
    `${ratio(gw, hw)} slower`,
    mb(gr),
    `${ratio(gr, hr)} slower`,
    `${mb(hw)} / ${mb(hr)}`,
    v.coherent,
  ]);
  log(`  write ${mb(gw)}, read ${mb(gr)} (host ${mb(hw)} / ${mb(hr)})`);
}
process.stdout.write(
  `${table(['setting', 'write', 'vs host', 'read', 'vs host', 'host disk write / read', 'coherent'], rows)}\n`,
);
