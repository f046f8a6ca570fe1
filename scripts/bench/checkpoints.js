import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CheckpointStore } from '../../dist/host/checkpoints/index.js';
import { median, ms } from './stats.js';

/**
 * Checkpoints on a 20,000-file, ~300 MB workspace (19,950 text files of 10 KiB in 200 folders plus
 * 50 binary files of 2 MiB), against plain `git add -A && git write-tree` on the same tree with its
 * own GIT_DIR and index (so git reads the same files, cache as warm). Cold = the first record of
 * the tree (every file hashed); warm = after a task changed 10 files (the stat cache / git's
 * index skip the rest); diff = the change set and patch of that task. Host only, no guest.
 */
const FILES = 20_000;
const BIG = 50;
const RUNS = 3;

function gitBaseline(ws, gitDir) {
  const env = {
    PATH: process.env.PATH,
    HOME: gitDir,
    GIT_DIR: gitDir,
    GIT_WORK_TREE: ws,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
  };
  const t = performance.now();
  execFileSync('git', ['add', '-A'], { env, cwd: ws });
  execFileSync('git', ['write-tree'], { env, cwd: ws });
  return performance.now() - t;
}

function makeWorkspace(ws) {
  // Source-like text (hex lines), so a patch has lines to show; every file's bytes differ.
  const small = Buffer.from(
    randomBytes(10 * 1024 * 32)
      .toString('hex')
      .replace(/(.{79})/g, '$1\n'),
  );
  let n = 0;
  for (let d = 0; d < 200; d++) {
    const dir = join(ws, `pkg${d}`, 'src');
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < 100 && n < FILES - BIG; f++, n++) {
      const off = (n * 1031) % (small.length - 10 * 1024);
      writeFileSync(join(dir, `file${f}.txt`), small.subarray(off, off + 10 * 1024));
    }
  }
  mkdirSync(join(ws, 'assets'));
  for (let b = 0; b < BIG; b++)
    writeFileSync(join(ws, 'assets', `blob${b}.bin`), randomBytes(2 * 1024 * 1024));
  return n + BIG;
}

/** Text files, so the patch has lines: 10 of the small files rewritten. */
function changeTen(ws, round) {
  for (let i = 0; i < 10; i++)
    writeFileSync(join(ws, `pkg${i * 17}`, 'src', `file${i}.txt`), `round ${round} line\n`.repeat(200));
}

/** Its ratio as the bench prints ratios: `N.NNx faster` or `N.NNx slower` than the baseline. */
export function fasterOrSlower(ours, baseline) {
  if (!Number.isFinite(ours) || !Number.isFinite(baseline) || ours <= 0 || baseline <= 0) return 'n/a';
  return ours <= baseline
    ? `${(baseline / ours).toFixed(2)}x faster`
    : `${(ours / baseline).toFixed(2)}x slower`;
}

export async function benchCheckpoints(log) {
  const root = mkdtempSync(join(tmpdir(), 'cvm-bench-ckpt-'));
  try {
    const ws = join(root, 'ws');
    mkdirSync(ws);
    log('checkpoints: writing a 20,000-file, 300 MB workspace');
    const files = makeWorkspace(ws);
    const bytes = (files - BIG) * 10 * 1024 + BIG * 2 * 1024 * 1024;
    // Past the racy window of both stat caches, so neither has to re-read what it just saw.
    await new Promise((r) => setTimeout(r, 1500));

    const opts = { exclude: [], maxFileBytes: 50 * 1024 * 1024 };
    const gitDir = join(root, 'baseline.git');
    execFileSync('git', ['init', '-q', '--bare', gitDir]);
    execFileSync('git', ['--git-dir', gitDir, 'config', 'core.bare', 'false']);
    const store = await CheckpointStore.open(join(root, 'state'), ws, opts);
    let t = performance.now();
    await store.begin({ id: 'cold', kind: 'task', label: 'cold' });
    const coldOurs = performance.now() - t;
    const coldGit = gitBaseline(ws, gitDir);
    log(`checkpoints: cold ${ms(coldOurs)} vs git ${ms(coldGit)}`);

    const warm = { ours: [], git: [], diff: [] };
    for (let round = 0; round < RUNS; round++) {
      const id = `warm${round}`;
      await store.begin({ id, kind: 'task', label: id });
      changeTen(ws, round);
      t = performance.now();
      const d = await store.finish(id);
      warm.ours.push(performance.now() - t);
      if (d.changes.length !== 10)
        throw new Error(`bench: expected 10 changes, the checkpoint saw ${d.changes.length}`);
      warm.git.push(gitBaseline(ws, gitDir));
      t = performance.now();
      const dd = await store.diff(id);
      const patch = await store.patch(dd);
      warm.diff.push(performance.now() - t);
      if (!patch.includes(`+round ${round} line`)) throw new Error('bench: the patch lacks the change');
      log(
        `checkpoints: round ${round + 1}: checkpoint ${ms(warm.ours.at(-1))}, diff ${ms(warm.diff.at(-1))}, git ${ms(warm.git.at(-1))}`,
      );
      await new Promise((r) => setTimeout(r, 1100));
    }
    const g = median(warm.git);
    const size = `${files.toLocaleString('en-US')} files, ${(bytes / 1048576).toFixed(0)} MiB`;
    return [
      [
        `checkpoint, first (${size})`,
        ms(coldOurs),
        `${ms(coldGit)} git add -A && write-tree`,
        fasterOrSlower(coldOurs, coldGit),
        'every file read and stored; fresh store vs fresh git index',
      ],
      [
        'checkpoint after a task changed 10 files',
        ms(median(warm.ours)),
        `${ms(g)} git add -A && write-tree`,
        fasterOrSlower(median(warm.ours), g),
        `median of ${RUNS}; goal <= 1.5x; ours ${warm.ours.map(ms).join(', ')}; git ${warm.git.map(ms).join(', ')}`,
      ],
      [
        'diff of that task (change set + patch)',
        ms(median(warm.diff)),
        `${ms(g)} git add -A && write-tree`,
        fasterOrSlower(median(warm.diff), g),
        `median of ${RUNS}; goal <= 1.5x; ${warm.diff.map(ms).join(', ')}`,
      ],
    ];
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
