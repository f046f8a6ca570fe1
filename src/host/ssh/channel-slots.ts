import { CoworkError } from '../errors.js';

interface Waiter {
  grant: (release: () => void) => void;
  fail: (err: CoworkError) => void;
}

/**
 * A counting semaphore for SSH session channels. sshd refuses more than `MaxSessions`
 * (OpenSSH default 10) open session channels per connection — exec and the SFTP subsystem
 * count, direct-tcpip forwards do not — so callers beyond the limit wait here, in order,
 * instead of failing with "open failed".
 */
export class ChannelSlots {
  private free: number;
  private readonly waiters: Waiter[] = [];
  private closedWith: CoworkError | undefined;

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) {
      throw new CoworkError('invalidArgument', `channel slots must be a positive integer, got ${size}`);
    }
    this.free = size;
  }

  get available(): number {
    return this.free;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** Resolves with a release function (call it exactly once); an abort while waiting rejects 'cancelled'. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    if (signal?.aborted) return Promise.reject(cancelled());
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(cancelled());
      };
      const waiter: Waiter = {
        grant: (release) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(release);
        },
        fail: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** Rejects every waiter and every later acquire with `err`. */
  close(err: CoworkError): void {
    this.closedWith = err;
    for (const w of this.waiters.splice(0)) w.fail(err);
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiters.shift();
      if (next) next.grant(this.releaser());
      else this.free++;
    };
  }
}

function cancelled(): CoworkError {
  return new CoworkError('cancelled', 'the command was cancelled before it started');
}
