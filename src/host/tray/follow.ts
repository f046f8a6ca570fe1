import { existsSync } from 'node:fs';
import type { ApiClient } from '../api/client.js';
import { CoworkError } from '../errors.js';
import type { MenuModel } from '../menu/model.js';

/**
 * Follows one workspace's controller over its local socket: the menu model from `menu.get`,
 * fetched again whenever the timeline records something (an approval asked or answered, the VM
 * stopping…), never on a timer. With no controller it publishes the stopped model and looks for
 * the socket every `pollMs`: a cheap stat, so a controller that starts later is noticed.
 */

export interface FollowOptions {
  /** The workspace's socket and a way to connect to it. */
  socketPath: string;
  connect: () => Promise<ApiClient<'local'>>;
  /** What menu.get is told about the dashboard. */
  dashboard: boolean;
  stoppedModel: () => MenuModel;
  onModel: (model: MenuModel) => void;
  onLine: (line: string) => void;
  pollMs?: number;
}

export class ControllerFollower {
  private client: ApiClient<'local'> | undefined;
  private subscription: AbortController | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private dirty = false;
  private stopped = false;

  constructor(private readonly opts: FollowOptions) {}

  start(): void {
    this.opts.onModel(this.opts.stoppedModel());
    void this.tryConnect();
  }

  /** The connected controller's client, for actions; undefined while none runs. */
  get current(): ApiClient<'local'> | undefined {
    return this.client;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.pollTimer);
    this.disconnect();
  }

  private async tryConnect(): Promise<void> {
    if (this.stopped || this.client) return;
    if (!existsSync(this.opts.socketPath)) return this.poll();
    let client: ApiClient<'local'>;
    try {
      client = await this.opts.connect();
    } catch {
      return this.poll(); // a stale socket, or a controller still starting
    }
    if (this.stopped) return client.close();
    this.client = client;
    const subscription = new AbortController();
    this.subscription = subscription;
    client
      .call('timeline.subscribe', {}, { signal: subscription.signal, onEvent: () => this.refresh() })
      .catch(() => {})
      .finally(() => {
        if (this.client === client) this.lost();
      });
    this.refresh();
  }

  /** Re-fetches the model; calls that arrive while one is in flight make one more fetch after it. */
  private refresh(): void {
    if (this.refreshing) {
      this.dirty = true;
      return;
    }
    const client = this.client;
    if (!client) return;
    this.refreshing = client
      .call('menu.get', { dashboard: this.opts.dashboard })
      .then((model) => {
        if (this.client === client) this.opts.onModel(model);
      })
      .catch((err) => {
        if (this.client === client) this.opts.onLine(`menu.get failed: ${CoworkError.from(err).message}`);
      })
      .finally(() => {
        this.refreshing = undefined;
        if (this.dirty) {
          this.dirty = false;
          this.refresh();
        }
      });
  }

  /** The controller went away (stopped, crashed): show stopped and look for the next one. */
  private lost(): void {
    this.disconnect();
    if (this.stopped) return;
    this.opts.onModel(this.opts.stoppedModel());
    this.poll();
  }

  private disconnect(): void {
    const client = this.client;
    this.client = undefined;
    this.subscription?.abort();
    this.subscription = undefined;
    client?.close();
  }

  private poll(): void {
    if (this.stopped) return;
    clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(() => void this.tryConnect(), this.opts.pollMs ?? 2_000);
  }
}
