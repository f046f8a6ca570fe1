import { randomBytes } from 'node:crypto';
import { CoworkError } from '../errors.js';
import type { ExecResult } from '../ssh/types.js';

/**
 * Background jobs: guest commands that outlive the request that started them (dev servers,
 * watchers). Each job is one exec channel on the sandbox's SSH session, held open while the
 * command runs, so a job dies with the sandbox: the session's close kills what it started and
 * the VM powers off. The decision to run it was taken before (Controller.jobsStart); this only
 * keeps the jobs, their output on the host and the way to end them.
 */

export type JobState = 'running' | 'exited' | 'killed' | 'failed';

export interface JobInfo {
  id: string;
  command: string;
  state: JobState;
  startedAt: string;
  endedAt?: string;
  exitCode?: number | null;
  signal?: string | null;
  /** Why it ended when it did not exit by itself (killed by whom, the session lost). */
  reason?: string;
  /** Output bytes the job wrote; `droppedBytes` of them are no longer in the host's log. */
  outputBytes: number;
  droppedBytes: number;
  taskId?: string;
}

/** What a job runs on: the guest exec (through the sandbox), with an abort and streaming output. */
export type JobRunner = (opts: {
  signal: AbortSignal;
  onStdout: (c: Buffer) => void;
  onStderr: (c: Buffer) => void;
}) => Promise<ExecResult>;

export interface JobChunk {
  stream: 'stdout' | 'stderr';
  data: Buffer;
}

export interface GuestJobsOptions {
  /** Jobs running at once. Each holds one SSH channel of the session's MaxSessions. */
  maxRunning?: number;
  /** Output kept per job on the host; older bytes are dropped first. */
  logBytes?: number;
  /** Ended jobs remembered for `jobs` and `logs`; older ones are forgotten. */
  keepEnded?: number;
  /** Called once when a job ends, whatever ended it. */
  onEnd?: (job: JobInfo, result?: ExecResult, error?: CoworkError) => void;
}

const DEFAULTS = { maxRunning: 16, logBytes: 1024 * 1024, keepEnded: 50 };

class Job {
  readonly info: JobInfo;
  readonly chunks: JobChunk[] = [];
  private kept = 0;
  readonly abort = new AbortController();
  readonly followers = new Set<(c: JobChunk | null) => void>();
  killedBy: string | undefined;
  done!: Promise<void>;

  constructor(
    id: string,
    command: string,
    taskId: string | undefined,
    private readonly cap: number,
  ) {
    this.info = {
      id,
      command,
      state: 'running',
      startedAt: new Date().toISOString(),
      outputBytes: 0,
      droppedBytes: 0,
      ...(taskId ? { taskId } : {}),
    };
  }

  push(stream: JobChunk['stream'], data: Buffer): void {
    const chunk = { stream, data: Buffer.from(data) };
    this.info.outputBytes += data.length;
    this.chunks.push(chunk);
    this.kept += data.length;
    while (this.kept > this.cap && this.chunks.length > 1) {
      const old = this.chunks.shift() as JobChunk;
      this.kept -= old.data.length;
      this.info.droppedBytes += old.data.length;
    }
    for (const f of this.followers) f(chunk);
  }

  end(fields: Partial<JobInfo>): void {
    Object.assign(this.info, fields, { endedAt: new Date().toISOString() });
    for (const f of this.followers) f(null);
    this.followers.clear();
  }
}

export class GuestJobs {
  private readonly jobs = new Map<string, Job>();
  private readonly opts: Required<Omit<GuestJobsOptions, 'onEnd'>> & Pick<GuestJobsOptions, 'onEnd'>;
  private closed: string | undefined;

  constructor(opts: GuestJobsOptions = {}) {
    this.opts = { ...DEFAULTS, ...opts };
  }

  /** Whether another job may start now (checked before the policy decision, so no approval is wasted). */
  assertRoom(): void {
    if (this.closed) throw new CoworkError('unavailable', `no new jobs: ${this.closed}`);
    if (this.running() >= this.opts.maxRunning) {
      throw new CoworkError(
        'limitExceeded',
        `${this.opts.maxRunning} background jobs are already running; end one with \`cowork-vm kill JOB\` (list them with \`cowork-vm jobs\`)`,
      );
    }
  }

  /** Starts a job on `run`; returns at once with its info (the command runs on). */
  start(command: string, run: JobRunner, taskId?: string): JobInfo {
    this.assertRoom();
    const id = `j${randomBytes(3).toString('hex')}`;
    const job = new Job(id, command, taskId, this.opts.logBytes);
    this.jobs.set(id, job);
    job.done = run({
      signal: job.abort.signal,
      onStdout: (c) => job.push('stdout', c),
      onStderr: (c) => job.push('stderr', c),
    }).then(
      (r) => this.finish(job, r),
      (e: unknown) => this.finish(job, undefined, CoworkError.from(e)),
    );
    this.forgetOld();
    return { ...job.info };
  }

  list(): JobInfo[] {
    return [...this.jobs.values()].map((j) => ({ ...j.info }));
  }

  running(): number {
    return [...this.jobs.values()].filter((j) => j.info.state === 'running').length;
  }

  get(id: string): JobInfo {
    return { ...this.job(id).info };
  }

  /**
   * The job's log: what the host still holds, then (with `follow`) every new chunk until the
   * job ends or `signal` aborts. Resolves with the job's info at that point.
   */
  async logs(
    id: string,
    emit: (c: JobChunk) => void,
    opts: { follow?: boolean; signal?: AbortSignal } = {},
  ): Promise<JobInfo> {
    const job = this.job(id);
    for (const c of job.chunks) emit(c);
    if (!opts.follow || job.info.state !== 'running' || opts.signal?.aborted) return { ...job.info };
    await new Promise<void>((resolve) => {
      const follower = (c: JobChunk | null) => {
        if (c) emit(c);
        else stop();
      };
      const stop = () => {
        job.followers.delete(follower);
        opts.signal?.removeEventListener('abort', stop);
        resolve();
      };
      job.followers.add(follower);
      opts.signal?.addEventListener('abort', stop, { once: true });
    });
    return { ...job.info };
  }

  /** Kills a running job's processes in the guest (its group and everything tagged with its exec). */
  async kill(id: string, by: string): Promise<JobInfo> {
    const job = this.job(id);
    if (job.info.state === 'running') {
      job.killedBy ??= by;
      job.abort.abort();
      await job.done;
    }
    return { ...job.info };
  }

  /** Ends every running job (the sandbox stops) and refuses new ones. */
  async close(reason: string): Promise<void> {
    this.closed = reason;
    await Promise.all(
      [...this.jobs.values()]
        .filter((j) => j.info.state === 'running')
        .map((j) => this.kill(j.info.id, reason).catch(() => undefined)),
    );
  }

  private finish(job: Job, result?: ExecResult, error?: CoworkError): void {
    if (result) {
      job.end({ state: 'exited', exitCode: result.exitCode, signal: result.signal });
    } else if (job.killedBy !== undefined) {
      job.end({ state: 'killed', exitCode: null, signal: 'KILL', reason: `killed by ${job.killedBy}` });
    } else {
      job.end({ state: 'failed', exitCode: null, signal: null, reason: error?.message ?? 'unknown error' });
    }
    this.opts.onEnd?.({ ...job.info }, result, error);
  }

  private job(id: string): Job {
    const job = this.jobs.get(id);
    if (!job) throw new CoworkError('notFound', `no job ${id} — list them with \`cowork-vm jobs\``);
    return job;
  }

  private forgetOld(): void {
    const ended = [...this.jobs.values()].filter((j) => j.info.state !== 'running');
    for (const j of ended.slice(0, Math.max(0, ended.length - this.opts.keepEnded)))
      this.jobs.delete(j.info.id);
  }
}
