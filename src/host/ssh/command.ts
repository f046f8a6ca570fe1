import { CoworkError } from '../errors.js';

/**
 * Building the one line sshd hands to the guest user's login shell. Everything the caller
 * gives (command, cwd, env values) is single-quoted, so it reaches the guest literally:
 * quotes, `$(…)`, backticks and newlines are data, never syntax of the wrapper.
 */

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The user's login shell as sshd exported it, read before the caller's env could override SHELL. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a JS template
const LOGIN_SHELL = '"${SHELL:-/bin/sh}"';

/**
 * Environment variable carrying the exec's nonce. Every process the command starts inherits
 * it, including ones that left the process group and session (setsid, daemons), so a kill can
 * find them in /proc/<pid>/environ.
 */
export const EXEC_TAG = 'COWORK_EXEC_ID';

/** Prefix of the line the wrapper prints on stderr before running the command. */
export const PID_MARKER = 'COWORK-EXEC-PID';

/** POSIX single-quoting. NUL cannot travel through a shell word, so it is refused. */
export function shellQuote(value: string, what = 'value'): string {
  if (value.includes('\0')) {
    throw new CoworkError(
      'invalidArgument',
      `${what} contains a NUL byte, which a shell cannot pass on; remove it`,
    );
  }
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

export interface WrapOptions {
  cwd: string;
  env?: Record<string, string>;
  /** Random token that lets the host find the wrapper's pid line in stderr. */
  nonce: string;
  /** Shell that runs the command; default: the user's login shell ($SHELL), else /bin/sh. */
  shell?: string;
}

/**
 * `printf <marker> $$ >&2; cd -- '<cwd>' && export K='v' && exec "$SHELL" -c '<command>'`.
 *
 * sshd starts every session in its own session and process group (setsid), and `exec` keeps
 * the pid, so the pid printed here is the pgid and sid of everything the command starts:
 * the host kills that group on timeout or abort. Because the command's shell *is* the
 * session process, sshd's exit-status/exit-signal are the command's own.
 */
export function wrapCommand(command: string, opts: WrapOptions): string {
  const chain = [...setupChain(opts), `exec "$cowork_shell" -c ${shellQuote(command, 'command')}`];
  const parts = [
    `printf '${PID_MARKER} %s %s\\n' ${opts.nonce} "$$" >&2`,
    `cowork_shell=${opts.shell === undefined ? LOGIN_SHELL : shellQuote(opts.shell, 'shell')}`,
  ];
  return `${parts.join('; ')}; ${chain.join(' && ')}`;
}

/** `cd -- '<cwd>'` and `export K='v' … COWORK_EXEC_ID=<nonce>`: what both ways of running a command do first. */
function setupChain(opts: Pick<WrapOptions, 'cwd' | 'env' | 'nonce'>): string[] {
  if (!/^[0-9a-f]{8,64}$/.test(opts.nonce)) {
    throw new CoworkError('internal', 'exec nonce must be lowercase hex');
  }
  if (opts.cwd === '') throw new CoworkError('invalidArgument', 'cwd is empty; give an absolute guest path');
  const assigns = Object.entries(opts.env ?? {}).map(([name, value]) => {
    if (!ENV_NAME.test(name)) {
      throw new CoworkError(
        'invalidArgument',
        `environment variable name ${JSON.stringify(name)} is not valid; use letters, digits and _ (not first a digit)`,
      );
    }
    return `${name}=${shellQuote(value, `environment variable ${name}`)}`;
  });
  // Last, so the caller's env cannot override it: the tag every descendant inherits.
  assigns.push(`${EXEC_TAG}=${opts.nonce}`);
  return [`cd -- ${shellQuote(opts.cwd, 'cwd')}`, `export ${assigns.join(' ')}`];
}

/**
 * The script the exec service's warm shell evaluates (execd-guest.ts): the same cd and exports as
 * wrapCommand, then the command evaluated by that shell — which is already the session leader of
 * its own session and process group, like the sshd path's login shell after its `exec`.
 */
export function execdScript(command: string, opts: Pick<WrapOptions, 'cwd' | 'env' | 'nonce'>): string {
  return `unset __cowork_script; ${setupChain(opts).join(' && ')} && eval ${shellQuote(command, 'command')}`;
}

/**
 * The command that kills everything one exec started: the process group and session led by
 * `pid` (pid = pgid = sid, see wrapCommand) when the pid is known, then — twice, to catch
 * children forked during the first pass — every process of this user whose environment carries
 * the exec's tag (processes that escaped with setsid, or all of them when the pid is unknown).
 */
export function killExecCommand(target: { pid?: number; nonce: string }, signal = 'KILL'): string {
  const { pid, nonce } = target;
  if (pid !== undefined && (!Number.isSafeInteger(pid) || pid <= 1)) {
    throw new CoworkError('internal', `refusing to kill pid ${pid}`);
  }
  if (!/^[0-9a-f]{8,64}$/.test(nonce)) throw new CoworkError('internal', 'exec nonce must be lowercase hex');
  if (!/^[A-Z0-9]+$/.test(signal)) throw new CoworkError('internal', `bad signal name ${signal}`);
  const group =
    pid === undefined
      ? ''
      : `kill -${signal} -- -${pid} 2>/dev/null; kill -${signal} ${pid} 2>/dev/null; ` +
        `pkill -${signal} -s ${pid} 2>/dev/null; `;
  // One grep over all environ files (forks are slow under TCG); -z: NUL-separated entries.
  const tagged =
    `for f in $(grep -lzxF '${EXEC_TAG}=${nonce}' /proc/[0-9]*/environ 2>/dev/null); do ` +
    `p=\${f#/proc/}; kill -${signal} "\${p%/environ}" 2>/dev/null; done`;
  return `${group}${tagged}; ${tagged}; true`;
}
