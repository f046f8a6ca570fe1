import { CoworkError } from '../errors.js';
import { browserHandle, currentPageUrl } from './browser-handle.js';
import type {
  AnyTool,
  ClaimEnv,
  ShellHandle,
  ToolAuthorization,
  ToolCallContext,
  ToolClaim,
  ToolGate,
  ToolPolicyRequest,
  ToolResult,
} from './types.js';

/**
 * One tool call: the tool's claim → exactly one decision on the enforcement path → the tool
 * runs with guest access scoped to that decision, revoked when it returns. The input must
 * already be parsed by the tool's schema. This is the only code that asks for a tool call's
 * decision: a tool cannot ask twice, and cannot reach the guest without one.
 */
export async function runToolCall(
  tool: AnyTool,
  input: unknown,
  gate: ToolGate,
  signal: AbortSignal = gate.signal,
): Promise<ToolResult> {
  const base: ToolCallContext = {
    taskId: gate.taskId,
    signal,
    maxFileSizeMB: gate.maxFileSizeMB,
    record: (e) => gate.record(e),
  };
  const refused = tool.precheck?.(input, { maxFileSizeMB: gate.maxFileSizeMB });
  if (refused) return refused;
  switch (tool.access) {
    case 'none':
      claimOf(tool, await tool.claim(input, NO_PAGE));
      return tool.run(input, base);
    case 'shell': {
      const claim = claimOf(tool, await tool.claim(input, NO_PAGE));
      if (claim.kind !== 'shell') throw mismatch(tool, claim);
      const shell = shellHandle(gate, claim, signal);
      try {
        return await tool.run(input, { ...base, shell });
      } finally {
        shell.close();
      }
    }
    case 'files':
      return runFileCall(tool, input, gate, base);
    case 'browser':
      return runBrowserCall(tool, input, gate, base);
    default:
      throw new CoworkError(
        'internal',
        `tool ${tool.name} declares an unknown access ${String(tool.access)}`,
      );
  }
}

const NO_PAGE: ClaimEnv = { pageUrl: async () => undefined };

function mismatch(tool: AnyTool, claim: ToolClaim): CoworkError {
  return new CoworkError(
    'internal',
    `tool ${tool.name} declares ${tool.access} access but claimed ${claim.kind} — fix the tool`,
  );
}

function claimOf(tool: AnyTool, claim: ToolClaim): ToolClaim {
  if (claim.kind !== tool.access) throw mismatch(tool, claim);
  return claim;
}

/** Why not, for the model, from a denied authorization. */
function denialReason(auth: Extract<ToolAuthorization, { allowed: false }>): string {
  return auth.reason ?? auth.decision.reasons.join('; ');
}

/** The policy request for a claim: the tool's name and risk, its input, the claimed paths. */
function toolRequest(
  tool: AnyTool,
  input: unknown,
  claim: Extract<ToolClaim, { kind: 'files' | 'browser' }>,
) {
  const req: ToolPolicyRequest = { kind: 'tool', tool: tool.name, risk: tool.risk, input };
  if (claim.paths) req.paths = claim.paths.map((p) => ({ ...p }));
  return req;
}

/** The shell path decides inside ControllerApi.exec: the handle runs the claimed command once. */
function shellHandle(
  gate: ToolGate,
  claim: Extract<ToolClaim, { kind: 'shell' }>,
  signal: AbortSignal,
): ShellHandle & { close(): void } {
  let spent = false;
  return {
    command: claim.command,
    cwd: claim.cwd,
    run(opts) {
      if (spent)
        throw new CoworkError('internal', 'a shell tool call runs its command once; this one already did');
      spent = true;
      return gate.exec(claim.command, {
        cwd: claim.cwd,
        timeoutMs: opts.timeoutMs,
        maxOutputBytes: opts.maxOutputBytes,
        signal,
      });
    },
    close() {
      spent = true;
    },
  };
}

async function runFileCall(
  tool: AnyTool,
  input: unknown,
  gate: ToolGate,
  base: ToolCallContext,
): Promise<ToolResult> {
  const claim = claimOf(tool, await tool.claim(input, NO_PAGE));
  if (claim.kind !== 'files') throw mismatch(tool, claim);
  const auth = await gate.authorize(toolRequest(tool, input, claim), base.signal);
  if (!auth.allowed) {
    return {
      content: `Denied: ${denialReason(auth) || 'policy said no'}. Nothing was read or written.`,
      isError: true,
      denied: true,
    };
  }
  try {
    return await tool.run(input, { ...base, files: auth.guest });
  } finally {
    auth.guest.revoke();
  }
}

/**
 * Browser calls are judged by the URL they open or act on: a tool that acts on the current
 * page gets that page's URL in its policy input (already allowed when it was opened), so
 * reading or typing into an allowed site does not ask every time. The URL a call opens is
 * also checked against the egress rules before anything is sent.
 */
async function runBrowserCall(
  tool: AnyTool,
  input: unknown,
  gate: ToolGate,
  base: ToolCallContext,
): Promise<ToolResult> {
  const task = gate.browser;
  if (!task)
    return {
      content: 'The browser is not available in this sandbox (start it with --image browser).',
      isError: true,
    };
  const env: ClaimEnv = { pageUrl: () => currentPageUrl(task) };
  const claim = claimOf(tool, await tool.claim(input, env));
  if (claim.kind !== 'browser') throw mismatch(tool, claim);
  const url = claim.url;
  const pageUrl = url ?? (await env.pageUrl());
  const policyInput =
    pageUrl && /^https?:/i.test(pageUrl) && input && typeof input === 'object'
      ? { ...input, url: pageUrl }
      : input;
  const auth = await gate.authorize(toolRequest(tool, policyInput, claim), base.signal);
  const refuse = (detail: string | undefined, content: string): ToolResult => {
    gate.record({ type: 'browser.action', action: tool.name, url, outcome: 'denied', detail });
    return { content, isError: true, denied: true };
  };
  if (!auth.allowed) return refuse(auth.reason, `Denied: ${denialReason(auth) || 'policy said no'}.`);
  try {
    if (url && /^https?:/i.test(url)) {
      const egress = task.checkUrl(url);
      if (!egress.allowed) return refuse(egress.reason, `Blocked by the egress policy: ${egress.reason}`);
    }
    return await tool.run(input, { ...base, files: auth.guest, browser: browserHandle(task, url) });
  } finally {
    auth.guest.revoke();
  }
}

/** A failed guest operation (missing file, permission) as something the model can act on. */
export function guestFailure(action: string, path: string, err: unknown): ToolResult {
  const msg = err instanceof Error ? err.message : String(err);
  return { content: `Could not ${action} ${path}: ${msg}`, isError: true };
}
