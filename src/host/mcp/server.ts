import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import {
  CallToolRequestSchema,
  type CallToolResult,
  ListToolsRequestSchema,
  type ServerNotification,
} from '@modelcontextprotocol/sdk/types.js';
import type { ApiClient } from '../api/client.js';
import type { EventOf, ResultOf } from '../api/contract.js';
import { CoworkError } from '../errors.js';
import { failureText } from './advice.js';

/** How often a waiting or running call tells the client it is alive (clients time out at ~60 s). */
export const PROGRESS_INTERVAL_MS = 4000;

export interface McpBridgeOptions {
  /** The workspace's controller (attached, or started, on first use; again after it went away). */
  attach: () => Promise<ApiClient<'local'>>;
  version: string;
  /** Progress for the person who started the client; MUST NOT be stdout (the MCP channel). */
  log: (line: string) => void;
  progressIntervalMs?: number;
  /**
   * The tools to list while the sandbox is still starting (same zod definitions, same listing
   * function): clients list tools at once when they start a server, long before a VM boots.
   */
  toolsBeforeReady?: () => ResultOf<'tools.list'>;
}

type Opened = Extract<EventOf<'tools.session'>, { type: 'opened' }>;
type Notify = (n: ServerNotification) => Promise<void>;

const INSTRUCTIONS =
  'Every tool runs inside the cowork-vm Linux VM (Debian), never on this computer: the workspace folder ' +
  'is /workspace there. Calls are decided by the sandbox policy; some wait for the user to approve them. ' +
  'A denied call says why and what the user can do — adapt instead of retrying it unchanged.';

/**
 * The MCP side of `cowork-vm mcp`: a thin adapter from the SDK's Server to the controller's
 * contract. It lists the controller's tools (`tools.list`) and hands each call to `tools.call`
 * in one tool session (`tools.session`, opened at the first call and held for as long as this
 * process lives); every decision is the controller's. It never prints to stdout.
 */
export class McpBridge {
  readonly server: Server;
  readonly #opts: McpBridgeOptions;
  #client: Promise<ApiClient<'local'>> | undefined;
  /** The controller, once attached. */
  #ready: ApiClient<'local'> | undefined;
  #session: Promise<Opened> | undefined;
  readonly #closing = new AbortController();

  constructor(opts: McpBridgeOptions) {
    this.#opts = opts;
    this.server = new Server(
      { name: 'cowork-vm', version: opts.version },
      { capabilities: { tools: {} }, instructions: INSTRUCTIONS },
    );
    this.server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: await this.#listTools() }));
    this.server.setRequestHandler(CallToolRequestSchema, (req, extra) =>
      this.#callTool(req.params.name, req.params.arguments ?? {}, {
        signal: extra.signal,
        progressToken: extra._meta?.progressToken,
        notify: extra.sendNotification,
      }),
    );
  }

  /** Attaches now (starting the sandbox if none runs), so the first call need not wait for a boot. */
  warmUp(): void {
    this.#attached().catch((err: unknown) => this.#opts.log(CoworkError.from(err).message));
  }

  /** Ends the session (its timeline task finishes) and the connection to the controller. */
  async close(): Promise<void> {
    // Never waits for an attach still under way (a booting sandbox): that one is closed when it lands.
    this.#closing.abort();
    const client = this.#ready;
    if (!client) return;
    await new Promise((r) => setTimeout(r, 50)); // let the session's cancel frame go out
    client.close();
  }

  async #listTools(): Promise<ResultOf<'tools.list'>> {
    const early = this.#opts.toolsBeforeReady;
    if (!this.#ready && early) {
      this.warmUp();
      return early();
    }
    const client = await this.#attached();
    return await client.call('tools.list').catch((err: unknown) => this.#lost(err));
  }

  async #callTool(
    name: string,
    input: Record<string, unknown>,
    x: { signal: AbortSignal; progressToken?: string | number; notify: Notify },
  ): Promise<CallToolResult> {
    const started = Date.now();
    let message = `${name} is running in the sandbox`;
    let ticks = 0;
    const tick = () => {
      if (x.progressToken === undefined || x.signal.aborted) return;
      ticks++;
      const secs = Math.round((Date.now() - started) / 1000);
      const params = { progressToken: x.progressToken, progress: ticks, message: `${message} (${secs} s)` };
      void x.notify({ method: 'notifications/progress', params }).catch(() => undefined);
    };
    const timer = setInterval(tick, this.#opts.progressIntervalMs ?? PROGRESS_INTERVAL_MS);
    try {
      const session = await this.#sessionOpen();
      const client = await this.#attached();
      const out = await client
        .call(
          'tools.call',
          { session: session.session, tool: name, input },
          {
            signal: x.signal,
            onEvent: (e) => {
              message = `${name} waits for approval ${e.id} — the user can answer with \`cowork-vm approve ${e.id}\`, the dashboard or the menubar`;
              this.#opts.log(message);
              tick();
            },
          },
        )
        .catch((err: unknown) => this.#lost(err));
      return { content: [{ type: 'text', text: out.text }], isError: out.isError };
    } catch (err) {
      const e = CoworkError.from(err);
      return { content: [{ type: 'text', text: failureText(e, name) }], isError: true };
    } finally {
      clearInterval(timer);
    }
  }

  #attached(): Promise<ApiClient<'local'>> {
    if (!this.#client) {
      const attaching = this.#opts.attach();
      this.#client = attaching;
      attaching.then(
        (c) => {
          if (this.#closing.signal.aborted) c.close();
          else if (this.#client === attaching) this.#ready = c;
        },
        () => {
          if (this.#client === attaching) this.#client = undefined;
        },
      );
    }
    return this.#client;
  }

  /** The session of this process; a new one after the controller went away. */
  #sessionOpen(): Promise<Opened> {
    if (this.#session) return this.#session;
    const info = this.server.getClientVersion();
    const clientInfo = { name: info?.name || 'unknown', version: info?.version ?? '' };
    const opening = this.#attached().then(
      (client) =>
        new Promise<Opened>((resolve, reject) => {
          client
            .call('tools.session', { client: clientInfo }, { signal: this.#closing.signal, onEvent: resolve })
            .then(
              () => reject(new CoworkError('unavailable', 'the tool session ended')),
              (err: unknown) => reject(err),
            )
            .finally(() => {
              if (this.#session === opening) this.#session = undefined;
            });
        }),
    );
    this.#session = opening;
    opening.then(
      (s) => this.#opts.log(`tool session ${s.session} open as ${s.origin} (cowork-vm timeline ${s.taskId})`),
      () => undefined,
    );
    return opening;
  }

  /** A call failed because the controller went away: the next call attaches again. */
  #lost(err: unknown): never {
    const e = CoworkError.from(err);
    if (e.code === 'unavailable') {
      this.#client = undefined;
      this.#ready = undefined;
      this.#session = undefined;
    }
    throw e;
  }
}
