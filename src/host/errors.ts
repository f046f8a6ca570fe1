/**
 * The one error type of cowork-vm. Every failure that reaches a user is a CoworkError whose
 * message says what happened and, where there is one, what to do next. The CLI maps `code`
 * to an exit code; the control socket carries `code` and `message` across processes.
 */
export const ERROR_CODES = [
  'invalidArgument', // bad input: config value, flag, path (names the key, value and allowed range)
  'notFound', // image, sandbox, task, approval, secret that does not exist
  'invalidState', // already running, not running, locked, already answered
  'timeout', // something did not happen in time
  'unsupported', // this host cannot do it (no hypervisor, no keychain, not macOS)
  'denied', // policy, approval or access control said no
  'unavailable', // a dependency is missing or broken (qemu, the VM, the keychain, the proxy)
  'cancelled', // the user or a caller aborted
  'limitExceeded', // a budget or guardrail limit was hit
  'internal', // a bug: should not happen
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class CoworkError extends Error {
  readonly code: ErrorCode;
  override readonly cause?: unknown;

  constructor(code: ErrorCode, message: string, cause?: unknown) {
    super(message);
    this.name = 'CoworkError';
    this.code = code;
    this.cause = cause;
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }

  static is(err: unknown, code?: ErrorCode): err is CoworkError {
    return err instanceof CoworkError && (code === undefined || err.code === code);
  }

  /** Wrap any thrown value; CoworkErrors pass through unchanged. */
  static from(err: unknown, code: ErrorCode = 'internal', prefix?: string): CoworkError {
    if (err instanceof CoworkError) return err;
    const msg = err instanceof Error ? err.message : String(err);
    return new CoworkError(code, prefix ? `${prefix}: ${msg}` : msg, err);
  }
}

/** Exit codes the CLI uses for each error code (126 = denied, like a shell's "cannot execute"). */
export const EXIT_CODES: Record<ErrorCode, number> = {
  invalidArgument: 64,
  notFound: 66,
  invalidState: 75,
  timeout: 124,
  unsupported: 69,
  denied: 126,
  unavailable: 69,
  cancelled: 130,
  limitExceeded: 75,
  internal: 70,
};
