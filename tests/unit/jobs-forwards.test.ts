import { mkdtempSync } from 'node:fs';
import { createServer, type Server, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Origin } from '../../src/host/api/controller.js';
import { MemoryApprovalBroker } from '../../src/host/approvals/index.js';
import { defaultConfig, parseConfigText, validateConfig } from '../../src/host/config/index.js';
import { CoworkError } from '../../src/host/errors.js';
import { parseForwardSpec } from '../../src/host/jobs/forward-spec.js';
import { GuestJobs, PortForwards } from '../../src/host/jobs/index.js';
import { createPolicyEngine } from '../../src/host/policy/index.js';
import { Controller } from '../../src/host/sandbox/controller.js';
import type { Sandbox } from '../../src/host/sandbox/sandbox.js';
import type { ExecResult } from '../../src/host/ssh/types.js';
import { Timeline } from '../../src/host/timeline/index.js';
import { execResult } from './agent-test-context.js';

/** A runner that streams what it is told and settles when the test says, or rejects on abort like the session. */
function controllableRunner() {
  let finish: (r: ExecResult) => void = () => {};
  let out: { onStdout: (c: Buffer) => void; onStderr: (c: Buffer) => void } | undefined;
  const runner = (opts: {
    signal: AbortSignal;
    onStdout: (c: Buffer) => void;
    onStderr: (c: Buffer) => void;
  }) =>
    new Promise<ExecResult>((resolve, reject) => {
      out = opts;
      finish = resolve;
      opts.signal.addEventListener('abort', () => reject(new CoworkError('cancelled', 'killed')));
    });
  return {
    runner,
    write: (s: string, err = false) => (err ? out?.onStderr : out?.onStdout)?.(Buffer.from(s)),
    finish: (r: ExecResult) => finish(r),
  };
}

describe('GuestJobs', () => {
  it('keeps output, follows it until the job ends, and reports the exit', async () => {
    const jobs = new GuestJobs();
    const r = controllableRunner();
    const job = jobs.start('serve', r.runner);
    r.write('one\n');
    r.write('warn\n', true);
    const seen: string[] = [];
    const follow = jobs.logs(job.id, (c) => seen.push(`${c.stream}:${c.data}`), { follow: true });
    r.write('two\n');
    r.finish(execResult({ exitCode: 4 }));
    const end = await follow;
    expect(seen).toEqual(['stdout:one\n', 'stderr:warn\n', 'stdout:two\n']);
    expect(end).toMatchObject({ state: 'exited', exitCode: 4, outputBytes: 13 });
    expect(jobs.running()).toBe(0);
  });

  it('kill aborts the run and marks the job killed by whom', async () => {
    const ended: string[] = [];
    const jobs = new GuestJobs({ onEnd: (j) => ended.push(`${j.id}:${j.state}`) });
    const job = jobs.start('sleep', controllableRunner().runner);
    const killed = await jobs.kill(job.id, 'cli');
    expect(killed).toMatchObject({ state: 'killed', reason: 'killed by cli' });
    expect(ended).toEqual([`${job.id}:killed`]);
  });

  it('a run that fails on its own (session lost) is failed, not killed', async () => {
    const jobs = new GuestJobs();
    const job = jobs.start('x', () => Promise.reject(new CoworkError('unavailable', 'connection lost')));
    await expect.poll(() => jobs.get(job.id).state).toBe('failed');
    expect(jobs.get(job.id).reason).toBe('connection lost');
  });

  it('drops the oldest output past the cap and counts it', () => {
    const jobs = new GuestJobs({ logBytes: 10 });
    const r = controllableRunner();
    const job = jobs.start('x', r.runner);
    for (const s of ['aaaa', 'bbbb', 'cccc', 'dddd']) r.write(s);
    const seen: string[] = [];
    void jobs.logs(job.id, (c) => seen.push(String(c.data)));
    expect(seen).toEqual(['cccc', 'dddd']);
    expect(jobs.get(job.id).droppedBytes).toBe(8);
  });

  it('refuses more than maxRunning jobs and any job after close', async () => {
    const jobs = new GuestJobs({ maxRunning: 1 });
    jobs.start('a', controllableRunner().runner);
    expect(() => jobs.start('b', controllableRunner().runner)).toThrow(/already running.*cowork-vm kill/);
    await jobs.close('stop');
    expect(jobs.list().map((j) => j.state)).toEqual(['killed']);
    expect(() => jobs.start('c', controllableRunner().runner)).toThrow(/no new jobs: stop/);
  });

  it('names the command to list jobs when one is unknown', () => {
    expect(() => new GuestJobs().get('jnope')).toThrow(/no job jnope .*cowork-vm jobs/);
  });
});

describe('PortForwards (real loopback sockets)', () => {
  const servers: Server[] = [];
  afterEach(() => {
    for (const s of servers.splice(0)) s.close();
  });

  /** A stand-in for the guest's port: an echo server, dialled the way the session's forward would be. */
  async function echoServer(): Promise<number> {
    const s = createServer((c) => c.pipe(c));
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    return (s.address() as { port: number }).port;
  }

  const roundTrip = (port: number, text: string) =>
    new Promise<string>((resolve, reject) => {
      const c = tcpConnect({ host: '127.0.0.1', port }, () => c.end(text));
      let got = '';
      c.on('data', (d) => (got += d));
      c.on('close', () => resolve(got));
      c.on('error', reject);
    });

  it('relays bytes both ways, listens on 127.0.0.1 only, and stops listening at close', async () => {
    const echo = await echoServer();
    const dialled: number[] = [];
    const fw = new PortForwards((guestPort) => {
      dialled.push(guestPort);
      return new Promise((resolve) => {
        const s = tcpConnect({ host: '127.0.0.1', port: echo }, () => resolve(s));
      });
    });
    const f = await fw.open(8000, 0);
    expect(f.url).toBe(`http://127.0.0.1:${f.hostPort}`);
    expect(await roundTrip(f.hostPort, 'ping')).toBe('ping');
    expect(dialled).toEqual([8000]);
    expect(fw.list()[0]?.connections).toBe(1);
    await fw.closeAll();
    await expect(roundTrip(f.hostPort, 'x')).rejects.toThrow(/ECONNREFUSED/);
    await expect(fw.open(8000, 0)).rejects.toThrow(/stopping/);
  });

  it('a guest port that refuses closes the host connection and calls the error hook', async () => {
    const errors: number[] = [];
    const fw = new PortForwards(
      () => Promise.reject(new Error('refused')),
      (p) => errors.push(p),
    );
    const f = await fw.open(9, 0);
    expect(await roundTrip(f.hostPort, 'x')).toBe('');
    expect(errors).toEqual([9]);
    await fw.closeAll();
  });

  it('a host port in use is refused with what to do', async () => {
    const taken = await echoServer();
    const fw = new PortForwards(() => Promise.reject(new Error('unused')));
    await expect(fw.open(80, taken)).rejects.toThrow(/in use; pick another .*0 = any free port/);
    await expect(fw.close(taken)).rejects.toThrow(/no forward on host port/);
  });
});

describe('forward specs and [forward] ports', () => {
  it('parses GUEST[:HOST] and refuses anything else naming the allowed ranges', () => {
    expect(parseForwardSpec('8000')).toEqual({ guestPort: 8000, hostPort: 8000 });
    expect(parseForwardSpec(3000)).toEqual({ guestPort: 3000, hostPort: 3000 });
    expect(parseForwardSpec('3000:13000')).toEqual({ guestPort: 3000, hostPort: 13000 });
    expect(parseForwardSpec('3000:0')).toEqual({ guestPort: 3000, hostPort: 0 });
    for (const bad of ['0', '70000', '80:70000', 'a:b', '-1', '80:', ':80', '1:2:3'])
      expect(() => parseForwardSpec(bad)).toThrow(/GUEST_PORT 1–65535 and HOST_PORT 0–65535/);
  });

  it('[forward] ports takes ports and "GUEST:HOST" strings; a bad one names key and value', () => {
    const file = 'config.toml';
    const ok = validateConfig(parseConfigText('[forward]\nports = [8000, "3000:0"]\n', file), file, {});
    expect(ok.forward.ports).toEqual([8000, '3000:0']);
    expect(defaultConfig().forward.ports).toEqual([]);
    expect(() => validateConfig(parseConfigText('[forward]\nports = [70000]\n', file), file, {})).toThrow(
      /forward\.ports.*70000.*GUEST_PORT\[:HOST_PORT\]/s,
    );
  });
});

describe('Controller: forwards are for the local context only', () => {
  function controller() {
    const timeline = Timeline.open(join(mkdtempSync(join(tmpdir(), 'fw-tl-')), 'timeline.db'));
    const dialled: number[] = [];
    const sandbox = {
      info: { accel: 'tcg', share: '9p', image: 'base', imageHash: 'h', bootMs: 1, startedAt: '' },
      session: {
        forward: async (p: number) => {
          dialled.push(p);
          throw new Error('no guest');
        },
      },
    } as unknown as Sandbox;
    const c = new Controller({
      workspace: mkdtempSync(join(tmpdir(), 'fw-ws-')),
      stateDir: mkdtempSync(join(tmpdir(), 'fw-st-')),
      sandbox,
      policy: createPolicyEngine(defaultConfig()),
      approvals: new MemoryApprovalBroker({ timeline }),
      timeline,
      approvalTimeoutMs: 60_000,
      vmSpec: { driver: 'qemu', cpus: 1, memoryMiB: 512 },
    });
    return { c, timeline };
  }

  it('refuses the agent and remote contexts, records the refusal, opens for local', async () => {
    const { c, timeline } = controller();
    for (const origin of [
      { id: 'agent', context: 'agent' },
      { id: 'device:abc', context: 'gateway' },
      { id: 'telegram:42', context: 'gateway' },
    ] as Origin[]) {
      await expect(c.forwardOpen({ guestPort: 8000, hostPort: 0 }, origin)).rejects.toMatchObject({
        code: 'denied',
        message: expect.stringContaining('only be opened from the local context'),
      });
    }
    expect((await c.status()).forwards).toEqual([]);
    const refused = timeline.query({}).filter((e) => e.type === 'forward.refused');
    expect(refused.map((e) => (e.data as { origin: string }).origin)).toEqual([
      'agent',
      'device:abc',
      'telegram:42',
    ]);
    const f = await c.forwardOpen({ guestPort: 8000, hostPort: 0 }, { id: 'cli', context: 'local' });
    expect((await c.status()).forwards?.map((x) => x.hostPort)).toEqual([f.hostPort]);
    await c.closeJobsAndForwards('stop');
    expect((await c.status()).forwards).toEqual([]);
    expect(timeline.query({}).map((e) => e.type)).toContain('forward.closed');
    timeline.close();
  });

  it('jobs.start takes one policy decision: a denied command starts nothing', async () => {
    const { c, timeline } = controller();
    const out = await c.jobsStart({ command: 'sudo id' }, { id: 'cli', context: 'local' });
    expect(out.job).toBeUndefined();
    expect(out.decision.effect).toBe('deny');
    expect(c.jobsList()).toEqual([]);
    expect(timeline.query({}).map((e) => e.type)).toEqual(['command.requested', 'policy.decision']);
    timeline.close();
  });
});
