import { CoworkError } from '../errors.js';

/**
 * `GUEST_PORT[:HOST_PORT]`, as `cowork-vm forward` and `[forward] ports` spell a forward. Without a
 * host port the guest's port is used on the host too; `:0` takes any free port. Loaded by the CLI:
 * imports nothing but errors.ts.
 */
export interface ForwardSpec {
  guestPort: number;
  hostPort: number;
}

const SPEC = /^(\d{1,5})(?::(\d{1,5}))?$/;

export function parseForwardSpec(spec: string | number, what = 'forward'): ForwardSpec {
  const m = SPEC.exec(String(spec).trim());
  const guestPort = m ? Number(m[1]) : Number.NaN;
  const hostPort = m?.[2] !== undefined ? Number(m[2]) : guestPort;
  if (!m || guestPort < 1 || guestPort > 65535 || hostPort > 65535) {
    throw new CoworkError(
      'invalidArgument',
      `${what} = ${JSON.stringify(spec)} is not GUEST_PORT[:HOST_PORT] with GUEST_PORT 1–65535 and HOST_PORT 0–65535 (0 = any free port), e.g. 8000 or 3000:13000`,
    );
  }
  return { guestPort, hostPort };
}
