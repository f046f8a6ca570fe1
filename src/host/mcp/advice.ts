import type { CoworkError } from '../errors.js';

/**
 * What an outside agent (and, through it, its user) is told when a call did not run: why, and
 * what the user can do about it. The agent's model reads these lines, so they say plainly
 * whether retrying makes sense. Pure: the facts come from the call's timeline records.
 */

/** What the enforcement path recorded about one call, as far as the advice needs it. */
export interface CallFacts {
  tool: string;
  /** The shell command, for a shell call. */
  command?: string;
  /** The policy's decision (the last `policy.decision` of the call). */
  decision?: { effect: string; layer: string; rule?: string; reasons: string[] };
  /** The approval the call asked for, and how it ended. */
  approval?: { id: string; timedOut?: boolean; deniedBy?: string; message?: string };
}

const CONFIG = '~/.config/cowork-vm/config.toml';

/** The advice appended to a denied call's text. */
export function deniedAdvice(f: CallFacts): string {
  const a = f.approval;
  if (a?.timedOut) {
    return (
      `Nobody answered approval ${a.id} in time ([guardrails] approvalTimeoutSeconds), so it was denied. ` +
      `Ask the user to answer it when you retry: \`cowork-vm approvals\` then \`cowork-vm approve <id>\`, ` +
      'or the dashboard, the menubar or Telegram.'
    );
  }
  if (a?.deniedBy) {
    return (
      `The user denied it (${a.deniedBy}${a.message ? `: ${a.message}` : ''}). ` +
      'Do not retry the same call; ask the user what to do instead.'
    );
  }
  const d = f.decision;
  const where = d?.rule ? `rule ${d.rule} (${d.layer})` : d ? `the ${d.layer} layer` : 'the policy';
  const example = f.command ? `"Bash(${oneLine(f.command)})"` : `a rule for ${f.tool}`;
  return (
    `Denied by the sandbox policy: ${where}. Do not retry the same call; try another way or ask the user. ` +
    `To allow it, the user can add ${example} to [policy] allow (or ask) in ${CONFIG} and restart ` +
    'the sandbox (`cowork-vm stop`; the next call starts it again)' +
    (d?.layer === 'guardrails' ? ' — a guardrail may still block it whatever the rules say.' : '.')
  );
}

/** A call that failed on the way (not a denial): the sandbox went away, a cancel, a bad request. */
export function failureText(err: CoworkError, tool: string): string {
  switch (err.code) {
    case 'unavailable': {
      // The controller's message usually says already how to start it again: not twice.
      const advice = err.message.includes('cowork-vm start')
        ? ''
        : ' The VM may have stopped or crashed; the user can check `cowork-vm status` and start it ' +
          'again with `cowork-vm start --detach` (workspace files are intact).';
      return `${tool} could not run: the sandbox is not available (${err.message}).${advice}`;
    }
    case 'cancelled':
      return `${tool} was cancelled (${err.message}); the guest command was stopped.`;
    case 'limitExceeded':
      return err.message;
    case 'notFound':
      return `${tool}: ${err.message}`;
    default:
      return `${tool} failed: ${err.message}`;
  }
}

/** The session budget a call ran into. */
export function budgetText(kind: 'calls' | 'time', limit: number): string {
  const what =
    kind === 'calls'
      ? `this MCP session has made its ${limit} tool calls ([mcp] maxCalls = ${limit})`
      : `this MCP session has run for its ${limit} minutes ([mcp] maxSessionMinutes = ${limit})`;
  return (
    `Budget reached: ${what}. Nothing was run. The user can start a new session (restart the MCP ` +
    `server in the client) or raise the limit in the [mcp] section of ${CONFIG}.`
  );
}

function oneLine(s: string): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > 80 ? `${t.slice(0, 79)}…` : t;
}
