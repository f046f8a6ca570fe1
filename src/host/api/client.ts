import type { EventOf, MethodOf, OwnerParamsOf, ParamsOf, ResultOf, Transport } from './contract.js';

/*
 * The typed client: `call(method, params)` checked against the contract at compile time. It
 * imports the contract for its types only, so the CLI's client path still loads no zod (the
 * server validates every frame anyway).
 */

/** What a transport's untyped client offers (LocalControlClient, or an adapter of ControlClient). */
export interface RawCaller {
  call(method: string, params: Record<string, unknown>, opts: RawCallOptions): Promise<unknown>;
  close?(): void;
}

export interface RawCallOptions {
  signal?: AbortSignal;
  onStream?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  onEvent?: (event: unknown) => void;
}

export interface CallOptions<M> {
  /** Cancels the call (the local socket aborts the command or ends the subscription). */
  signal?: AbortSignal;
  /** Command output while it runs (exec). */
  onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  /** Each event the call pushes (subscriptions). */
  onEvent?: (event: M extends keyof EventMap ? EventMap[M] : never) => void;
}

type EventMap = { [M in MethodOf<Transport>]: EventOf<M> };

/** The owner's socket accepts the owner-only params too (a policy context, an API key). */
type ParamsFor<T extends Transport, M extends MethodOf<T>> = T extends 'local'
  ? OwnerParamsOf<M>
  : ParamsOf<M>;

/** Params may be left out only when none is required. */
type CallArgs<T extends Transport, M extends MethodOf<T>> =
  Record<never, never> extends ParamsFor<T, M>
    ? [params?: ParamsFor<T, M>, opts?: CallOptions<M>]
    : [params: ParamsFor<T, M>, opts?: CallOptions<M>];

export class ApiClient<T extends Transport> {
  constructor(private readonly raw: RawCaller) {}

  call<M extends MethodOf<T>>(method: M, ...[params, opts]: CallArgs<T, M>): Promise<ResultOf<M>> {
    const raw: RawCallOptions = {};
    if (opts?.signal) raw.signal = opts.signal;
    if (opts?.onOutput) raw.onStream = opts.onOutput;
    if (opts?.onEvent) raw.onEvent = opts.onEvent as (event: unknown) => void;
    return this.raw.call(method, dropUndefined(params ?? {}), raw) as Promise<ResultOf<M>>;
  }

  close(): void {
    this.raw.close?.();
  }
}

/** `{ a: undefined }` is sent as `{}`: JSON would drop it anyway, and the frame stays what was meant. */
function dropUndefined(params: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined));
}
