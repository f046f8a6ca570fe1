import { createServer, type Server } from 'node:net';
import { type Browser, type BrowserContext, type CDPSession, chromium, type Page } from 'playwright-core';
import { CoworkError } from '../errors.js';
import type { GuestSession } from '../ssh/types.js';

export const DEVTOOLS_PORT = 9222;
export const DOWNLOADS_DIR = '/workspace/downloads';

export interface GuestBrowserOptions {
  session: GuestSession;
  /** The egress proxy as the guest reaches it (where the driver's `network.egress` says). */
  proxyUrl: string;
  /** Per-task profile name (lives in the guest's tmpfs). */
  profile: string;
  launchTimeoutMs?: number;
  signal?: AbortSignal;
}

/** Chromium flags: headless, proxied, no background traffic, profile in tmpfs. */
export function chromiumArgs(opts: { proxyUrl: string; profileDir: string; port?: number }): string[] {
  return [
    '--headless=new',
    // The VM is the sandbox; Chromium's own namespace sandbox is redundant inside it.
    '--no-sandbox',
    '--disable-gpu',
    '--disable-dev-shm-usage',
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-quic',
    '--metrics-recording-only',
    // Headless pages count as hidden: without these Chromium may throttle the renderer and skip
    // the compositor frame a screenshot waits for (seen under TCG as "Unable to capture screenshot").
    '--disable-renderer-backgrounding',
    '--disable-background-timer-throttling',
    '--disable-backgrounding-occluded-windows',
    // Under TCG on a loaded host the GPU process (viz, software compositing) dies now and then
    // (exit code 11; a screenshot then fails with "Unable to capture screenshot"). Chromium
    // restarts it, but after a few such deaths it exits ("GPU process isn't usable") and takes
    // every page with it — seen in CI and reproduced by a CPU-loaded stress run. Keep restarting
    // it, and don't let a slow VM count as a hung GPU.
    '--disable-gpu-watchdog',
    '--disable-gpu-process-crash-limit',
    `--proxy-server=${opts.proxyUrl}`,
    // Loopback in the guest is the guest itself; everything else goes to the proxy.
    '--proxy-bypass-list=<-loopback>',
    `--user-data-dir=${opts.profileDir}`,
    '--remote-debugging-address=127.0.0.1',
    `--remote-debugging-port=${opts.port ?? DEVTOOLS_PORT}`,
    'about:blank',
  ];
}

/** One download as Chromium reports it (CDP Browser.downloadWillBegin / downloadProgress). */
export interface BrowserDownload {
  guid: string;
  url: string;
  suggestedFilename: string;
  state: 'inProgress' | 'completed' | 'canceled';
  receivedBytes: number;
  totalBytes: number;
  /** Where the finished file is in the guest (set when completed). */
  filePath?: string;
}

export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Chromium running headless in the guest as the unprivileged agent user, driven from the host
 * with playwright-core over CDP. The DevTools port is reached only through the SSH connection
 * (session.forward) behind a listener on the host's loopback — never exposed anywhere else.
 */
export class GuestBrowser {
  private readonly tracked = new Map<string, BrowserDownload>();

  private constructor(
    private readonly session: GuestSession,
    private readonly server: Server,
    readonly browser: Browser,
    readonly context: BrowserContext,
    private readonly profileDir: string,
    cdp: CDPSession,
  ) {
    // A download is written as <name>.crdownload and renamed only when Chromium completes it
    // (seconds after the click under TCG): track its state so tools can wait for it.
    cdp.on('Browser.downloadWillBegin', (e) => {
      const { guid, url, suggestedFilename } = e;
      const start = { state: 'inProgress', receivedBytes: 0, totalBytes: 0 } as const;
      this.tracked.set(guid, { guid, url, suggestedFilename, ...start });
    });
    cdp.on('Browser.downloadProgress', (e) => {
      const d = this.tracked.get(e.guid);
      if (!d) return;
      Object.assign(d, { state: e.state, receivedBytes: e.receivedBytes, totalBytes: e.totalBytes });
      if (e.filePath) d.filePath = e.filePath;
    });
  }

  /** Downloads of this browser, oldest first. */
  downloads(): BrowserDownload[] {
    return [...this.tracked.values()].map((d) => ({ ...d }));
  }

  /**
   * The downloads after the first `since`: waits up to beginMs for one to begin (0: don't wait),
   * then until none of them is in progress or timeoutMs has passed.
   */
  async waitForDownloads(
    since: number,
    opts: { beginMs: number; timeoutMs: number },
  ): Promise<BrowserDownload[]> {
    const sleep = () => new Promise((r) => setTimeout(r, 100));
    const begin = Date.now() + opts.beginMs;
    while (this.tracked.size <= since && Date.now() < begin) await sleep();
    const end = Date.now() + opts.timeoutMs;
    const fresh = () => this.downloads().slice(since);
    while (fresh().some((d) => d.state === 'inProgress') && Date.now() < end) await sleep();
    return fresh();
  }

  static async launch(opts: GuestBrowserOptions): Promise<GuestBrowser> {
    const { session } = opts;
    const profileDir = `/tmp/cowork-browser-${opts.profile.replace(/[^a-zA-Z0-9_-]/g, '')}`;
    const args = chromiumArgs({ proxyUrl: opts.proxyUrl, profileDir }).map(shq).join(' ');
    const start = await session.exec(
      `command -v chromium >/dev/null || { echo "no chromium in this guest image" >&2; exit 127; }; ` +
        `mkdir -p -- ${shq(DOWNLOADS_DIR)} ${shq(profileDir)} && ` +
        `(setsid nohup chromium ${args} >/tmp/chromium.log 2>&1 </dev/null &) && echo started`,
      { timeoutMs: 30_000, signal: opts.signal },
    );
    if (start.exitCode === 127) {
      throw new CoworkError(
        'unavailable',
        'this guest has no Chromium — start the sandbox with `--image browser` (build it with `cowork-vm image build browser`)',
      );
    }
    if (start.exitCode !== 0)
      throw new CoworkError('unavailable', `could not start Chromium in the guest: ${start.stderr.trim()}`);

    // Under TCG Chromium takes a while: wait until DevTools answers inside the guest.
    const deadline = Date.now() + (opts.launchTimeoutMs ?? 120_000);
    let version = '';
    while (Date.now() < deadline) {
      const probe = await session.exec(
        `curl -s --max-time 2 http://127.0.0.1:${DEVTOOLS_PORT}/json/version`,
        {
          timeoutMs: 10_000,
          signal: opts.signal,
        },
      );
      if (probe.exitCode === 0 && probe.stdout.includes('webSocketDebuggerUrl')) {
        version = probe.stdout;
        break;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    if (!version) {
      const log = await session
        .exec('tail -n 20 /tmp/chromium.log', { timeoutMs: 5000 })
        .catch(() => undefined);
      throw new CoworkError(
        'timeout',
        `Chromium in the guest did not open DevTools in time:\n${log?.stdout ?? ''}`,
      );
    }
    const wsPath = new URL(JSON.parse(version).webSocketDebuggerUrl as string).pathname;

    const server = createServer((sock) => {
      session.forward(DEVTOOLS_PORT).then(
        (remote) => {
          sock.pipe(remote).pipe(sock);
          const close = () => {
            sock.destroy();
            remote.destroy();
          };
          sock.on('error', close);
          remote.on('error', close);
          sock.on('close', close);
          remote.on('close', close);
        },
        () => sock.destroy(),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    let browser: Browser;
    try {
      browser = await chromium.connectOverCDP(`ws://127.0.0.1:${port}${wsPath}`, { timeout: 60_000 });
    } catch (err) {
      server.close();
      throw CoworkError.from(err, 'unavailable', 'could not attach to Chromium in the guest');
    }
    const context = browser.contexts()[0] ?? (await browser.newContext());
    // Downloads go to the workspace in the guest (not to a host folder Playwright would pick).
    const cdp = await browser.newBrowserCDPSession();
    await cdp.send('Browser.setDownloadBehavior', {
      behavior: 'allow',
      downloadPath: DOWNLOADS_DIR,
      eventsEnabled: true,
    });
    return new GuestBrowser(session, server, browser, context, profileDir, cdp);
  }

  async page(): Promise<Page> {
    return this.context.pages()[0] ?? (await this.context.newPage());
  }

  async close(): Promise<void> {
    await this.browser.close().catch(() => {});
    this.server.close();
    await this.session
      .exec(`pkill -f -- ${shq(`--user-data-dir=${this.profileDir}`)}; rm -rf ${shq(this.profileDir)}`, {
        timeoutMs: 10_000,
      })
      .catch(() => {});
  }
}
