import { CALLS, type CallContext, isSubscription, parseParams, SUBSCRIPTIONS } from '../api/bindings.js';
import type { LocalMethodName } from '../api/contract.js';
import type { ControllerApi, Origin } from '../api/controller.js';
import { LOCAL_METHODS } from '../control/local-protocol.js';
import type { LocalCallContext, LocalHandler, LocalHandlers } from '../control/local-server.js';

/**
 * The local socket's adapter of the contract. Whoever is on the local socket is the user who
 * started the sandbox (socket mode 0600), so the caller is the owner: origin 'cli', params
 * validated with the owner's schema, which lets them ask for a policy context (the bindings
 * accept only one at least as strict as 'local', i.e. any).
 */
export function localHandlers(api: ControllerApi): LocalHandlers {
  const origin: Origin = { id: 'cli', context: 'local' };
  return Object.fromEntries(LOCAL_METHODS.map((m) => [m, handler(api, origin, m)])) as LocalHandlers;
}

function handler(api: ControllerApi, origin: Origin, name: LocalMethodName): LocalHandler {
  return async (raw, ctx) => {
    const check = parseParams(name, raw, 'owner');
    if (!check.ok) throw check.error;
    if (isSubscription(name)) {
      const subscribe = SUBSCRIPTIONS[name] as (
        p: unknown,
        a: ControllerApi,
        emit: (e: unknown) => void,
      ) => () => void;
      return await holdOpen(
        subscribe(check.params, api, (e) => ctx.event(e)),
        ctx,
      );
    }
    const call = CALLS[name as keyof typeof CALLS] as (p: unknown, c: CallContext) => unknown;
    return await call(check.params, {
      api,
      origin,
      role: 'admin',
      signal: ctx.signal,
      onOutput: (stream, chunk) => ctx.stream(stream, chunk),
      onEvent: (event) => ctx.event(event),
    });
  };
}

/** A subscription on the local socket lasts as long as its request: until cancelled or disconnected. */
async function holdOpen(unsubscribe: () => void, ctx: LocalCallContext): Promise<null> {
  await new Promise<void>((resolve) => {
    if (ctx.signal.aborted) resolve();
    else ctx.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  unsubscribe();
  return null;
}
