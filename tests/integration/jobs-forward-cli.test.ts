import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, cli, cliAsync } from '../helpers/cli.js';
import { makeTestEnv, type TestSandboxEnv } from '../helpers/sandbox.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Background jobs and port forwards through the built CLI against one real guest: a dev server
 * (python3 -m http.server) started with `exec --background`, fetched on the host through
 * `forward`, its log read with `logs`, ended with `kill`, and a job that dies with the sandbox.
 */

type Job = { id: string; state: string; exitCode?: number | null; reason?: string; command: string };
type Forward = { guestPort: number; hostPort: number; url: string };
type Event = { type: string; data: Record<string, unknown> };

/** GET on the host's loopback; resolves with status and body, rejects when nothing answers. */
function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Whether anything accepts a TCP connection on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

describe('background jobs and port forwards (built CLI, real guest)', () => {
  let t: TestSandboxEnv;
  let ws: string;
  /** `cowork-vm SUBCOMMAND --workspace WS …`: the flag goes before any `--` of exec. */
  const run = (args: string[]) => cli([args[0] as string, '--workspace', ws, ...args.slice(1)], t.env);
  const json = <T>(args: string[]): T => {
    const r = run([args[0] as string, '--json', ...args.slice(1)]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as T;
  };
  const timeline = () => json<Event[]>(['timeline']);

  beforeAll(() => {
    assertBuilt();
    t = makeTestEnv('jobs');
    ws = t.workspace;
    writeFileSync(join(ws, 'marker.txt'), 'served from the guest\n');
    // One forward from the config, opened at start (host port 0 = any free port).
    mkdirSync(t.env.COWORK_VM_CONFIG_DIR as string, { recursive: true });
    writeFileSync(
      join(t.env.COWORK_VM_CONFIG_DIR as string, 'config.toml'),
      '[forward]\nports = ["8124:0"]\n',
    );
    const r = run(['start', '--detach']);
    expect(r.code, r.stderr).toBe(0);
  });
  afterAll(() => {
    run(['stop']);
    t.cleanup();
  });

  let server: Job;
  let fwd: Forward;

  it('exec --background starts a dev server and returns its id at once; jobs lists it running', () => {
    const r = run(['exec', '--background', '--', 'python3 -u -m http.server 8123 --bind 127.0.0.1']);
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    expect(id).toMatch(/^j[0-9a-f]{6}$/);
    expect(r.stderr).toContain(`cowork-vm logs ${id}`);
    const jobs = json<Job[]>(['jobs']);
    server = jobs.find((j) => j.id === id) as Job;
    expect(server).toMatchObject({
      id,
      state: 'running',
      command: 'python3 -u -m http.server 8123 --bind 127.0.0.1',
    });
    expect(run(['jobs']).stdout).toMatch(new RegExp(`^${id}  running since`, 'm'));
  });

  it('forward makes the guest port reachable on 127.0.0.1: the server answers with the workspace file', async () => {
    fwd = json<Forward>(['forward', '8123:0']);
    expect(fwd.guestPort).toBe(8123);
    expect(fwd.hostPort).toBeGreaterThan(0);
    expect(fwd.url).toBe(`http://127.0.0.1:${fwd.hostPort}`);
    // The server needs a moment to bind under TCG: until then the guest refuses the channel.
    const res = await waitFor(
      () => get(`${fwd.url}/marker.txt`).catch(() => undefined),
      'the guest http.server answering through the forward',
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    expect(res).toEqual({ status: 200, body: 'served from the guest\n' });
  });

  it('status lists the forwards, the configured one included, and the running job', () => {
    const st = json<{ forwards: Forward[]; jobs: { running: number } }>(['status']);
    expect(st.jobs.running).toBeGreaterThanOrEqual(1);
    expect(st.forwards.map((f) => f.guestPort).sort()).toEqual([8123, 8124]);
    const configured = st.forwards.find((f) => f.guestPort === 8124) as Forward;
    expect(configured.hostPort).toBeGreaterThan(0);
    expect(run(['status']).stdout).toContain(`guest 8123 → ${fwd.url}`);
  });

  it('a forwarded port nothing listens on in the guest closes the host connection, not the sandbox', async () => {
    const st = json<{ forwards: Forward[] }>(['status']);
    const configured = st.forwards.find((f) => f.guestPort === 8124) as Forward;
    await expect(get(`${configured.url}/`)).rejects.toThrow();
    expect(json<Job[]>(['jobs']).find((j) => j.id === server.id)?.state).toBe('running');
  });

  it('a second forward of a host port in use is refused with what to do', () => {
    const r = run(['forward', `8123:${fwd.hostPort}`]);
    // Same guest and host port: the existing forward is answered, not a second listener.
    expect(r.code, r.stderr).toBe(0);
    const busy = run(['forward', `9999:${fwd.hostPort}`]);
    expect(busy.code).toBe(75);
    expect(busy.stderr).toContain(`host port 127.0.0.1:${fwd.hostPort} is in use`);
    const bad = run(['forward', '70000']);
    expect(bad.code).toBe(64);
    expect(bad.stderr).toContain('GUEST_PORT 1–65535');
  });

  it('logs shows the server output; logs --follow streams new output until the job ends', async () => {
    const logs = run(['logs', server.id]);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stderr).toMatch(/"GET \/marker\.txt HTTP\/1\.1" 200/);
    const follow = cliAsync(['logs', '--workspace', ws, '--follow', server.id], t.env);
    // A request made while following shows up in the followed output.
    await waitFor(
      () => get(`${fwd.url}/while-following`).then((r) => r.status === 404),
      'a 404 for /while-following',
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    await waitFor(
      () => run(['logs', server.id]).stderr.includes('/while-following'),
      'the request in the job log',
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    const killed = json<Job>(['kill', server.id]);
    expect(killed).toMatchObject({ id: server.id, state: 'killed', reason: 'killed by cli' });
    const followed = await follow;
    expect(followed.code, followed.stderr).toBe(0);
    expect(followed.stderr).toContain('/while-following');
  });

  it('kill stopped the server in the guest: the forward gets no answer and no python process is left', async () => {
    await expect(get(`${fwd.url}/marker.txt`)).rejects.toThrow();
    const ps = run(['exec', '--', "pgrep -f 'http[.]server'; echo rc=$?"]);
    expect(ps.stdout).toContain('rc=1');
    expect(json<Job[]>(['jobs']).find((j) => j.id === server.id)?.state).toBe('killed');
  });

  it('a job that exits by itself is reported with its exit code and output', async () => {
    const id = run(['exec', '--background', '--', 'echo done-marker; exit 3']).stdout.trim();
    const job = await waitFor(
      () => json<Job[]>(['jobs']).find((j) => j.id === id && j.state !== 'running'),
      `job ${id} ending`,
      { timeoutMs: 30_000, intervalMs: 300 },
    );
    expect(job).toMatchObject({ state: 'exited', exitCode: 3 });
    expect(run(['logs', id]).stdout).toBe('done-marker\n');
    const finished = timeline().find((e) => e.type === 'exec.finished' && e.data.jobId === id);
    expect(finished?.data).toMatchObject({ exitCode: 3, stdoutExcerpt: 'done-marker\n' });
  });

  it('jobs take the same policy path as exec: a denied command starts no job and exits 126', () => {
    const before = json<Job[]>(['jobs']).length;
    const r = run(['exec', '--background', '--', 'sudo python3 -m http.server 80']);
    expect(r.code).toBe(126);
    expect(r.stderr).toMatch(/denied: .*sudo/i);
    expect(json<Job[]>(['jobs'])).toHaveLength(before);
    const decisions = timeline().filter(
      (e) => e.type === 'policy.decision' && e.data.command === 'sudo python3 -m http.server 80',
    );
    expect(decisions.map((d) => d.data.effect)).toEqual(['deny']);
    const started = timeline().filter((e) => e.type === 'exec.started' && e.data.jobId === server.id);
    expect(started).toHaveLength(1);
  });

  it('unknown jobs and bad combinations are refused with what to do', () => {
    const r = run(['logs', 'jffffff']);
    expect(r.code).toBe(66);
    expect(r.stderr).toContain('cowork-vm jobs');
    const bad = run(['exec', '--background', '--max-output', '2048', '--', 'true']);
    expect(bad.code).toBe(64);
    expect(bad.stderr).toContain('--background takes no');
  });

  it('a running job and its forward end with the sandbox at stop', async () => {
    const id = run(['exec', '--background', '--', 'sleep 1000']).stdout.trim();
    const again = json<Forward>(['forward', '8123:0']);
    expect(await listening(again.hostPort)).toBe(true);
    const r = run(['stop']);
    expect(r.code, r.stderr).toBe(0);
    expect(await listening(again.hostPort)).toBe(false);
    const events = timeline();
    expect(events.find((e) => e.type === 'job.killed' && e.data.jobId === id)?.data).toMatchObject({
      by: 'stop',
    });
    expect(events.find((e) => e.type === 'exec.failed' && e.data.jobId === id)).toBeDefined();
    expect(
      events.find((e) => e.type === 'forward.closed' && e.data.hostPort === again.hostPort)?.data,
    ).toMatchObject({ by: 'stop' });
  });
});
