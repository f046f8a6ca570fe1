import { execFile, spawn } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CoworkError } from '../../dist/host/errors.js';
import { hostPaths } from '../../dist/host/paths.js';
import { startController } from '../../dist/host/sandbox/serve.js';
import { warmImage } from '../../dist/host/sandbox/warm.js';
import { ImageStore } from '../../dist/host/vm/index.js';

/**
 * Real sandboxes for the benchmark: `startController` (what `cowork-vm start` runs) on throwaway
 * state/config folders and a throwaway workspace, TCG forced (KVM is unusable on these hosts).
 */

export const IO_BYTES = 64 * 1024 * 1024;

/**
 * A throwaway root with an empty workspace and private state/config folders (TCG forced). A
 * root-owned workspace is remapped in the guest through bindfs (the agent is never root); a
 * user's workspace is not. Benchmark the usual case: a workspace owned by an ordinary user.
 */
export function benchRoot(prefix = 'cvm-bench-') {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const workspace = join(root, 'ws');
  mkdirSync(workspace);
  if (process.getuid?.() === 0) chownSync(workspace, 1000, 1000);
  const env = {
    ...process.env,
    COWORK_VM_STATE_DIR: join(root, 'state'),
    COWORK_VM_CONFIG_DIR: join(root, 'config'),
    COWORK_VM_ACCEL: 'tcg',
  };
  return { root, workspace, env };
}

/** Boots one sandbox; resolves with the running controller, wall-clock ms to ready, and cleanup. */
export async function bootSandbox({ share, warm = false, log }) {
  const { root, workspace, env } = benchRoot();
  const t0 = performance.now();
  let firstLineMs;
  const onProgress = (l) => {
    // The kernel's first console line (quiet: its first warning) — where QEMU's own start ends.
    if (firstLineMs === undefined && /^guest: \[/.test(l)) firstLineMs = performance.now() - t0;
    log(`  ${l}`);
  };
  let running;
  try {
    running = await startController({ workspace, env, share, warm, onProgress });
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw err;
  }
  const readyMs = performance.now() - t0;
  const { sandbox } = running;
  const store = new ImageStore(hostPaths(env));
  const image = (await store.resolve(sandbox.opts.image, 'x86_64')).boot;
  return {
    running,
    readyMs,
    firstLineMs,
    workspace,
    env,
    like: {
      image,
      cpus: sandbox.opts.cpus,
      memoryMiB: sandbox.opts.memoryMiB,
      shareMode: sandbox.info.share,
    },
    async dispose() {
      await running.shutdown('bench done').catch(() => {});
      await rm(root, { recursive: true, force: true });
    },
  };
}

/**
 * Takes the base image's warm snapshot for the sandboxes bootSandbox starts (same config: the
 * defaults, TCG) and returns its description; `bootSandbox({ warm: true })` then restores it.
 */
export async function takeWarmSnapshot({ log }) {
  const root = mkdtempSync(join(tmpdir(), 'cvm-bench-warm-'));
  const env = {
    ...process.env,
    COWORK_VM_STATE_DIR: join(root, 'state'),
    COWORK_VM_CONFIG_DIR: join(root, 'config'),
    COWORK_VM_ACCEL: 'tcg',
  };
  try {
    return await warmImage({ env, workspace: root, onProgress: (l) => log(`  ${l}`) });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

function checkOk(result, what) {
  if (result?.exitCode !== 0) {
    const detail = result ? `exit ${result.exitCode}: ${result.stderr || result.stdout}` : 'no result';
    throw new CoworkError('internal', `bench: ${what} failed in the guest (${detail.trim().slice(0, 300)})`);
  }
}

/** `exec true` n times over the sandbox's one persistent SSH connection; per-run ms. */
export async function timeSessionExec(sb, n) {
  const session = sb.running.sandbox.session;
  for (let i = 0; i < 5; i++) checkOk(await session.exec('true'), 'warm-up exec');
  const out = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const r = await session.exec('true');
    out.push(performance.now() - t);
    checkOk(r, 'exec true');
  }
  return out;
}

/** The same through Controller.exec: policy decision + timeline records + the session. */
export async function timeControllerExec(sb, n) {
  const { controller } = sb.running;
  const origin = { id: 'bench', context: 'local' };
  const first = await controller.exec({ command: 'true' }, origin);
  if (!first.result)
    return { skipped: `policy said ${first.decision.effect} for \`true\` (${first.deniedReason ?? ''})` };
  const out = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const r = await controller.exec({ command: 'true' }, origin);
    out.push(performance.now() - t);
    checkOk(r.result, 'controller exec true');
  }
  return { samples: out };
}

function run(bin, args) {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: 120_000, maxBuffer: 1 << 20 }, (err, stdout, stderr) =>
      err
        ? reject(new CoworkError('internal', `bench: ${bin} failed: ${stderr || err.message}`, err))
        : resolve(stdout),
    );
  });
}

/** A fresh OpenSSH client process per command (full key exchange each time); per-run ms. */
export async function timeFreshSsh(sb, n) {
  const key = join(sb.running.stateDir, 'keys', 'client_ed25519');
  const port = sb.running.sandbox.info.sshPort;
  if (!port) throw new CoworkError('unavailable', 'bench: the sandbox has no forwarded SSH port');
  const args = [
    '-i',
    key,
    '-p',
    String(port),
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'BatchMode=yes',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'LogLevel=ERROR',
    'agent@127.0.0.1',
    'true',
  ];
  const out = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await run('ssh', args);
    out.push(performance.now() - t);
  }
  return out;
}

/** dd's own timing ("… copied, 0.51 s, …") in ms; the wall time when it cannot be read. */
function ddMs(stderr, wallMs) {
  const m = /copied, ([0-9.]+) s/.exec(stderr);
  return m ? Number(m[1]) * 1000 : wallMs;
}

function hostDd(args) {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const p = spawn('dd', args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    let err = '';
    p.stderr.on('data', (c) => {
      err += c;
    });
    p.once('error', reject);
    p.once('exit', (code) =>
      code === 0
        ? resolve(ddMs(err, performance.now() - t))
        : reject(new CoworkError('internal', `bench: dd failed on the host: ${err}`)),
    );
  });
}

async function guestDd(session, args, what) {
  const t = performance.now();
  const r = await session.exec(`LC_ALL=C dd ${args}`, { timeoutMs: 300_000 });
  checkOk(r, what);
  return ddMs(r.stderr, performance.now() - t);
}

const count = IO_BYTES / (1024 * 1024);

/**
 * 64 MiB written with dd (1 MiB blocks, conv=fsync) and read back, in the guest through the
 * workspace share and on the host into the same folder, each timed by dd itself (so the guest
 * figure excludes the SSH round trip). Both shares are mounted cache=none in the guest, so the
 * guest's read goes to the host each time; on both sides the read is served from the host's
 * page cache (the host's caches are not dropped: other work shares this host).
 */
export async function timeShareIo(sb, runs) {
  const session = sb.running.sandbox.session;
  const guest = { write: [], read: [] };
  const host = { write: [], read: [] };
  for (let i = 0; i < runs; i++) {
    const f = `/workspace/bench-${i}.bin`;
    const w = await guestDd(session, `if=/dev/zero of=${f} bs=1M count=${count} conv=fsync`, 'dd write');
    const r = await guestDd(session, `if=${f} of=/dev/null bs=1M`, 'dd read');
    guest.write.push(w);
    guest.read.push(r);
    await rm(join(sb.workspace, `bench-${i}.bin`), { force: true });

    const hf = join(sb.workspace, `host-bench-${i}.bin`);
    host.write.push(await hostDd(['if=/dev/zero', `of=${hf}`, 'bs=1M', `count=${count}`, 'conv=fsync']));
    host.read.push(await hostDd([`if=${hf}`, 'of=/dev/null', 'bs=1M']));
    await rm(hf, { force: true });
  }
  return { guest, host };
}
