import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import type { ExecOutcome } from '../../src/host/api/controller.js';
import type { GuestBrowser } from '../../src/host/browser/guest-browser.js';
import { CoworkError } from '../../src/host/errors.js';
import type { Decision, PolicyRequest } from '../../src/host/policy/types.js';
import type { DirEntry, ExecOptions, ExecResult, FileStat, GuestSession } from '../../src/host/ssh/types.js';
import { scopeGuestFiles } from '../../src/host/tools/guest-files.js';
import type {
  ShellExecOptions,
  TaskBrowser,
  ToolAuthorization,
  ToolEvent,
  ToolGate,
  ToolPolicyRequest,
} from '../../src/host/tools/types.js';

/**
 * In-test implementations of the seams the agent and its tools talk to: a ToolGate whose
 * decisions are scripted per test and whose calls are recorded, over an in-memory guest file
 * system. Allowed file calls get the production guest-file grant (scopeGuestFiles) over that
 * in-memory guest, exactly as the Controller hands it out. The real-guest versions of these
 * scenarios live in tests/integration/agent-guest.test.ts.
 */

export function execResult(partial: Partial<ExecResult> = {}): ExecResult {
  return {
    exitCode: 0,
    signal: null,
    stdout: '',
    stderr: '',
    truncated: false,
    durationMs: 1,
    timedOut: false,
    ...partial,
  };
}

/** Guest files in memory, keyed by absolute guest path. exec records the command and runs nothing. */
export class MemoryGuestSession implements GuestSession {
  readonly files = new Map<string, Buffer>();
  readonly dirs = new Set<string>(['/workspace']);
  readonly execs: { command: string; opts?: ExecOptions }[] = [];
  execHandler: (command: string, opts?: ExecOptions) => Promise<ExecResult> = async () => execResult();
  readonly connected = true;

  async exec(command: string, opts?: ExecOptions): Promise<ExecResult> {
    this.execs.push({ command, opts });
    // Only the one shape a write's folder creation takes: `mkdir -p -- <one single-quoted word>`.
    const mk = /^mkdir -p -- ((?:'[^']*'|\\')+)$/.exec(command);
    if (mk?.[1]) {
      const dir = mk[1].replace(/'([^']*)'|\\'/g, (_q, inner: string | undefined) => inner ?? "'");
      for (let d = dir; d !== '/'; d = posix.dirname(d)) this.dirs.add(d);
      return execResult();
    }
    return this.execHandler(command, opts);
  }
  async readFile(path: string, opts?: { maxBytes?: number }): Promise<Buffer> {
    const data = this.files.get(path);
    if (!data) throw new CoworkError('notFound', `No such file: ${path}`);
    if (opts?.maxBytes !== undefined && data.length > opts.maxBytes) {
      throw new CoworkError('limitExceeded', `${path} is larger than ${opts.maxBytes} bytes`);
    }
    return data;
  }
  async writeFile(path: string, data: string | Buffer): Promise<void> {
    if (!this.dirs.has(posix.dirname(path)))
      throw new CoworkError('notFound', `No such directory: ${posix.dirname(path)}`);
    this.files.set(path, Buffer.from(data));
  }
  async stat(path: string): Promise<FileStat> {
    if (this.dirs.has(path)) return { path, type: 'directory', size: 4096, mode: 0o755, mtimeMs: 0 };
    const f = this.files.get(path);
    if (!f) throw new CoworkError('notFound', `No such file: ${path}`);
    return { path, type: 'file', size: f.length, mode: 0o644, mtimeMs: 0 };
  }
  async list(path: string): Promise<DirEntry[]> {
    if (!this.dirs.has(path)) throw new CoworkError('notFound', `No such directory: ${path}`);
    const out: DirEntry[] = [];
    for (const d of this.dirs)
      if (d !== path && posix.dirname(d) === path)
        out.push({ name: posix.basename(d), type: 'directory', size: 4096 });
    for (const [f, data] of this.files)
      if (posix.dirname(f) === path) out.push({ name: posix.basename(f), type: 'file', size: data.length });
    return out;
  }
  async forward(): Promise<never> {
    throw new CoworkError('unsupported', 'no port forwarding in the in-memory session');
  }
  async close(): Promise<void> {}
}

let sharedWorkspace: string | undefined;
function testWorkspace(): string {
  if (!sharedWorkspace) {
    const dir = mkdtempSync(join(tmpdir(), 'cowork-toolctx-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    sharedWorkspace = dir;
  }
  return sharedWorkspace;
}

const decision = (effect: Decision['effect'], reasons: string[] = []): Decision => ({
  effect,
  reasons,
  layer: 'tool',
});

export type ScriptedVerdict = { allowed: true } | { allowed: false; reason: string };

/** A ToolGate whose policy answers are scripted and whose calls are recorded. */
export class RecordingToolContext implements ToolGate {
  readonly taskId: string;
  readonly controller = new AbortController();
  /** The guest behind the gate: tools never see it, only grants scoped to a decision. */
  readonly session = new MemoryGuestSession();
  /** A real, empty folder: the write grant re-runs the path guard on the host copy before writing. */
  readonly workspace = testWorkspace();
  maxFileSizeMB = 1;
  readonly authorizeCalls: PolicyRequest[] = [];
  readonly shellCalls: { command: string; opts?: ShellExecOptions }[] = [];
  readonly events: ToolEvent[] = [];
  /** Entries an allowed scoped (list/search) decision withholds. */
  decisionWithheld: string[] | undefined;
  /** Decides shell commands and file tools alike; default allow. */
  policy: (req: PolicyRequest) => ScriptedVerdict = () => ({ allowed: true });
  /** Runs an allowed shell command "in the guest". */
  shell: (command: string, opts?: ShellExecOptions) => Promise<ExecResult> = async () => execResult();
  browser?: TaskBrowser;

  constructor(taskId = 't-test01') {
    this.taskId = taskId;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  async authorize(req: ToolPolicyRequest, signal: AbortSignal): Promise<ToolAuthorization> {
    this.authorizeCalls.push(req);
    const v = this.policy(req);
    if (!v.allowed) return { allowed: false, decision: decision('deny', [v.reason]), reason: v.reason };
    const d = this.decisionWithheld
      ? { ...decision('allow'), withheld: this.decisionWithheld }
      : decision('allow');
    const guest = scopeGuestFiles(this.session, {
      workspace: this.workspace,
      paths: req.paths ?? [],
      withheld: d.withheld ?? [],
      signal,
    });
    return { allowed: true, decision: d, guest };
  }

  async exec(command: string, opts: ShellExecOptions): Promise<ExecOutcome> {
    this.shellCalls.push({ command, opts });
    const v = this.policy({ kind: 'shell', command, cwd: opts?.cwd });
    if (!v.allowed) return { decision: decision('deny', [v.reason]), deniedReason: v.reason };
    return { decision: decision('allow'), result: await this.shell(command, opts) };
  }

  record(event: ToolEvent): void {
    this.events.push(event);
  }
}

/** A 1×1 PNG, what the stub page "captures". */
export const TINY_PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);

/**
 * The task's browser for unit tests of the decision path: a page that answers what the browser
 * tools ask of it and remembers where it is. Real Chromium runs in tests/e2e/browser.test.ts.
 */
export function stubTaskBrowser(
  checkUrl: TaskBrowser['checkUrl'] = () => ({ allowed: true }),
): TaskBrowser & { url: string; opened: string[] } {
  const state = { url: 'about:blank', opened: [] as string[] };
  const el = {
    first: () => el,
    or: () => el,
    getAttribute: async () => null,
    click: async () => {},
    fill: async () => {},
    press: async () => {},
    ariaSnapshot: async () => '- heading "Stub page"',
  };
  const page = {
    url: () => state.url,
    title: async () => 'Stub page',
    goto: async (u: string) => {
      state.url = u;
      state.opened.push(u);
      return { status: () => 200, text: async () => 'ok' };
    },
    locator: () => el,
    getByRole: () => el,
    getByText: () => el,
    waitForLoadState: async () => {},
    goBack: async () => null,
    screenshot: async () => TINY_PNG,
  };
  const guestBrowser = {
    page: async () => page,
    downloads: () => [],
    waitForDownloads: async () => [],
  } as unknown as GuestBrowser;
  return {
    get url() {
      return state.url;
    },
    opened: state.opened,
    browser: async () => guestBrowser,
    checkUrl,
  };
}
