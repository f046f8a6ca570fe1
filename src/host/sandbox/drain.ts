import type { ControllerApi } from '../api/controller.js';
import type { LocalHandlers } from '../control/local-server.js';

/**
 * The control requests in flight (local socket and remote API alike), so that shutdown waits
 * for the real thing — every request answered — instead of guessing a delay. A request that
 * outlives the deadline is abandoned: shutdown never hangs on a client.
 */
export class InFlightRequests {
  private readonly pending = new Set<Promise<unknown>>();
  private readonly aborts = new Set<AbortController>();
  private aborted = false;
  private idle: (() => void) | undefined;

  /** Local-socket handlers whose calls are tracked and can be cancelled by `abortAll`. */
  wrapHandlers(handlers: LocalHandlers): LocalHandlers {
    const wrapped = {} as LocalHandlers;
    for (const [method, handler] of Object.entries(handlers) as [
      keyof LocalHandlers,
      LocalHandlers[keyof LocalHandlers],
    ][]) {
      wrapped[method] = (params, ctx) => {
        const ac = new AbortController();
        const onAbort = () => ac.abort(ctx.signal.reason);
        if (ctx.signal.aborted || this.aborted) ac.abort();
        else ctx.signal.addEventListener('abort', onAbort, { once: true });
        this.aborts.add(ac);
        let started: Promise<unknown>;
        try {
          started = handler(params, { ...ctx, signal: ac.signal });
        } catch (err) {
          started = Promise.reject(err);
        }
        const call = this.track(started);
        void call
          .finally(() => {
            ctx.signal.removeEventListener('abort', onAbort);
            this.aborts.delete(ac);
          })
          .catch(() => {});
        return call;
      };
    }
    return wrapped;
  }

  /** The same API with every promise-returning call tracked (the remote API has no cancel of its own here). */
  wrapApi<T extends ControllerApi>(api: T): T {
    return new Proxy(api, {
      get: (target, key, receiver) => {
        const value = Reflect.get(target, key, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          const result = (value as (...a: unknown[]) => unknown).apply(target, args);
          return result instanceof Promise ? this.track(result) : result;
        };
      },
    });
  }

  get count(): number {
    return this.pending.size;
  }

  /** Cancels every tracked local request (and any that arrives later): their handlers answer "cancelled". */
  abortAll(): void {
    this.aborted = true;
    for (const ac of this.aborts) ac.abort();
  }

  /**
   * Resolves true once no request is in flight and the last answers have been handed to their
   * sockets, false when `deadlineMs` passed first.
   */
  async drain(deadlineMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const empty = new Promise<true>((resolve) => {
      if (this.pending.size === 0) resolve(true);
      else this.idle = () => resolve(true);
    });
    const late = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), deadlineMs);
    });
    const drained = await Promise.race([empty, late]);
    clearTimeout(timer);
    this.idle = undefined;
    // The server writes each answer in a reaction to the handler's promise; one turn of the
    // event loop later every one of those writes has been issued.
    if (drained) await new Promise((resolve) => setImmediate(resolve));
    return drained;
  }

  private track<T>(call: Promise<T>): Promise<T> {
    this.pending.add(call);
    const settled = () => {
      this.pending.delete(call);
      if (this.pending.size === 0) this.idle?.();
    };
    call.then(settled, settled);
    return call;
  }
}
