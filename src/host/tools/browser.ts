import { z } from 'zod';
import { type BrowserDownload, DOWNLOADS_DIR, type GuestBrowser } from '../browser/guest-browser.js';
import { abridge } from './abridge.js';
import type { Tool, ToolContext, ToolResult } from './types.js';

/**
 * Browser tools (risk: network). Chromium runs in the guest behind the egress proxy; every
 * tool asks the policy (recorded) and checks its target URL against the egress rules before it
 * acts, and logs a browser.action event with the URL and the outcome. Screenshots are written
 * into the workspace through the guest session, never onto the host filesystem.
 */
export interface BrowserToolContext extends ToolContext {
  /** The task's browser, launched on first use. */
  browser(): Promise<GuestBrowser>;
  /** Egress verdict for a URL ('ask' counts as allowed here: the proxy asks when the request is made). */
  checkUrl(url: string): { allowed: boolean; reason?: string };
}

const SNAPSHOT_CAP = 24_000;

function isBrowserCtx(ctx: ToolContext): ctx is BrowserToolContext {
  return typeof (ctx as BrowserToolContext).browser === 'function';
}

async function gate(
  tool: Tool<unknown>,
  input: unknown,
  ctx: ToolContext,
  url?: string,
): Promise<ToolResult | undefined> {
  if (!isBrowserCtx(ctx))
    return {
      content: 'The browser is not available in this sandbox (start it with --image browser).',
      isError: true,
    };
  // Tools that act on the current page are judged by that page's URL (already allowed when it
  // was opened), so reading or typing into an allowed site does not ask every time.
  const pageUrl =
    url ??
    (await (
      await ctx.browser()
    )
      .page()
      .then((p) => p.url())
      .catch(() => undefined));
  const policyInput =
    pageUrl && /^https?:/i.test(pageUrl) && input && typeof input === 'object'
      ? { ...input, url: pageUrl }
      : input;
  const auth = await ctx.authorize({ kind: 'tool', tool: tool.name, risk: tool.risk, input: policyInput });
  if (!auth.allowed) {
    ctx.record({ type: 'browser.action', action: tool.name, url, outcome: 'denied', detail: auth.reason });
    return { content: `Denied: ${auth.reason ?? 'policy said no'}.`, isError: true, denied: true };
  }
  if (url && /^https?:/i.test(url)) {
    const egress = ctx.checkUrl(url);
    if (!egress.allowed) {
      ctx.record({
        type: 'browser.action',
        action: tool.name,
        url,
        outcome: 'denied',
        detail: egress.reason,
      });
      return { content: `Blocked by the egress policy: ${egress.reason}`, isError: true, denied: true };
    }
  }
  return undefined;
}

async function act(
  name: string,
  ctx: ToolContext,
  url: string | undefined,
  fn: (b: GuestBrowser) => Promise<ToolResult>,
): Promise<ToolResult> {
  const bctx = ctx as BrowserToolContext;
  try {
    const result = await fn(await bctx.browser());
    ctx.record({ type: 'browser.action', action: name, url, outcome: result.isError ? 'error' : 'ok' });
    return result;
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0] ?? String(err);
    ctx.record({ type: 'browser.action', action: name, url, outcome: 'error', detail: msg.slice(0, 500) });
    return { content: `${name} failed: ${msg}`, isError: true };
  }
}

const urlInput = z.object({ url: z.string().url().describe('Absolute http(s) URL to open.') }).strict();
export const browserNavigateTool: Tool<z.infer<typeof urlInput>> = {
  name: 'browser_navigate',
  risk: 'network',
  description:
    'Open a URL in the headless browser (runs in the VM; only hosts the egress policy allows are reachable).',
  input: urlInput,
  describe: (i) => `browser_navigate ${i.url}`,
  async run(input, ctx) {
    const denied = await gate(browserNavigateTool as Tool<unknown>, input, ctx, input.url);
    if (denied) return denied;
    return act(browserNavigateTool.name, ctx, input.url, async (b) => {
      const page = await b.page();
      const res = await page.goto(input.url, { waitUntil: 'load', timeout: 60_000 });
      const status = res?.status();
      if (status === 403 && (await res?.text())?.includes('egress policy')) {
        return {
          content: `Blocked by the egress policy: ${abridge(await res!.text(), 1000)}`,
          isError: true,
          denied: true,
        };
      }
      return { content: `Opened ${page.url()} (HTTP ${status ?? '?'}) — title: ${await page.title()}` };
    });
  },
};

const empty = z.object({}).strict();
export const browserSnapshotTool: Tool<z.infer<typeof empty>> = {
  name: 'browser_snapshot',
  risk: 'network',
  description: 'The accessible text of the current page (roles, names, text), size-capped.',
  input: empty,
  describe: () => 'browser_snapshot',
  async run(input, ctx) {
    const denied = await gate(browserSnapshotTool as Tool<unknown>, input, ctx);
    if (denied) return denied;
    return act(browserSnapshotTool.name, ctx, undefined, async (b) => {
      const page = await b.page();
      const snap = await page.locator('body').ariaSnapshot({ timeout: 30_000 });
      return { content: `URL: ${page.url()}\n${abridge(snap, SNAPSHOT_CAP)}` };
    });
  },
};

const target = z
  .object({
    selector: z.string().optional().describe('CSS selector of the element.'),
    text: z
      .string()
      .optional()
      .describe('Visible text or accessible name of the element (used when no selector).'),
  })
  .strict()
  .refine((v) => v.selector || v.text, { message: 'give a selector or a text' });

function locate(page: Awaited<ReturnType<GuestBrowser['page']>>, t: { selector?: string; text?: string }) {
  if (t.selector) return page.locator(t.selector).first();
  return page
    .getByRole('button', { name: t.text! })
    .or(page.getByRole('link', { name: t.text! }))
    .or(page.getByText(t.text!))
    .first();
}

function describeDownloads(list: BrowserDownload[]): string {
  return list
    .map((d) => {
      const path = d.filePath ?? `${DOWNLOADS_DIR}/${d.suggestedFilename}`;
      if (d.state === 'completed') return `Downloaded ${path} (${d.receivedBytes} bytes).`;
      if (d.state === 'canceled') return `The download of ${d.url} was cancelled.`;
      return `Still downloading ${path} (${d.receivedBytes} of ${d.totalBytes || '?'} bytes so far).`;
    })
    .join('\n');
}

export const browserClickTool: Tool<z.infer<typeof target>> = {
  name: 'browser_click',
  risk: 'network',
  description: 'Click an element of the current page (by CSS selector or by its text).',
  input: target,
  describe: (i) => `browser_click ${i.selector ?? JSON.stringify(i.text)}`,
  async run(input, ctx) {
    const current = isBrowserCtx(ctx) ? (await (await ctx.browser()).page()).url() : undefined;
    const denied = await gate(browserClickTool as Tool<unknown>, input, ctx, current);
    if (denied) return denied;
    return act(browserClickTool.name, ctx, current, async (b) => {
      const page = await b.page();
      const el = locate(page, input);
      const href = await el.getAttribute('href', { timeout: 10_000 }).catch(() => null);
      if (href && isBrowserCtx(ctx)) {
        const next = new URL(href, page.url()).toString();
        const egress = ctx.checkUrl(next);
        if (!egress.allowed)
          return { content: `Blocked by the egress policy: ${egress.reason}`, isError: true, denied: true };
      }
      const downloadsBefore = b.downloads().length;
      const urlBefore = page.url();
      await el.click({ timeout: 30_000 });
      await page.waitForLoadState('load', { timeout: 30_000 }).catch(() => {});
      // A link that did not navigate may have started a download: wait until the file is complete
      // (it is renamed from .crdownload only then) so the model can use it right away.
      const started = await b.waitForDownloads(downloadsBefore, {
        beginMs: href && page.url() === urlBefore ? 3000 : 0,
        timeoutMs: 60_000,
      });
      const downloaded = started.length ? `\n${describeDownloads(started)}` : '';
      return { content: `Clicked. Now at ${page.url()} — title: ${await page.title()}${downloaded}` };
    });
  },
};

const typeInput = z
  .object({
    selector: z.string().describe('CSS selector of the input field.'),
    text: z.string().describe('Text to type.'),
    submit: z.boolean().optional().describe('Press Enter afterwards.'),
  })
  .strict();
export const browserTypeTool: Tool<z.infer<typeof typeInput>> = {
  name: 'browser_type',
  risk: 'network',
  description: 'Type text into a field of the current page (optionally press Enter).',
  input: typeInput,
  describe: (i) => `browser_type ${i.selector} (${i.text.length} chars)`,
  async run(input, ctx) {
    const denied = await gate(browserTypeTool as Tool<unknown>, input, ctx);
    if (denied) return denied;
    return act(browserTypeTool.name, ctx, undefined, async (b) => {
      const page = await b.page();
      await page.locator(input.selector).first().fill(input.text, { timeout: 30_000 });
      if (input.submit) await page.locator(input.selector).first().press('Enter');
      return { content: `Typed into ${input.selector}${input.submit ? ' and pressed Enter' : ''}.` };
    });
  },
};

const shotInput = z
  .object({
    path: z
      .string()
      .regex(/^[A-Za-z0-9._/-]+\.png$/, 'a workspace-relative path ending in .png')
      .optional()
      .describe('Where to save it in the workspace (default screenshots/<time>.png).'),
    fullPage: z.boolean().optional(),
  })
  .strict();
/** A busy (emulated) guest sometimes misses the frame Chromium captures from: try again. */
async function captureScreenshot(
  page: Awaited<ReturnType<GuestBrowser['page']>>,
  fullPage: boolean,
): Promise<Buffer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await page.screenshot({ fullPage, timeout: 60_000 });
    } catch (err) {
      if (attempt >= 3 || !/Unable to capture screenshot/.test((err as Error).message)) throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

export const browserScreenshotTool: Tool<z.infer<typeof shotInput>> = {
  name: 'browser_screenshot',
  risk: 'network',
  description: 'Take a PNG screenshot of the current page and save it into the workspace; returns its path.',
  input: shotInput,
  describe: (i) => `browser_screenshot ${i.path ?? ''}`.trim(),
  paths: (i) => [{ path: `/workspace/${i.path ?? 'screenshots/x.png'}`, access: 'write' }],
  async run(input, ctx) {
    const rel = input.path ?? `screenshots/${new Date().toISOString().replace(/[:.]/g, '-')}.png`;
    const auth = await ctx.authorize({
      kind: 'tool',
      tool: browserScreenshotTool.name,
      risk: browserScreenshotTool.risk,
      input,
      paths: [{ path: `/workspace/${rel}`, access: 'write' }],
    });
    if (!auth.allowed) return { content: `Denied: ${auth.reason}`, isError: true, denied: true };
    const denied = await gate(browserScreenshotTool as Tool<unknown>, input, ctx);
    if (denied) return denied;
    return act(browserScreenshotTool.name, ctx, undefined, async (b) => {
      const page = await b.page();
      const png = await captureScreenshot(page, input.fullPage ?? false);
      const dir = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
      if (dir) await ctx.session.exec(`mkdir -p /workspace/${dir}`, { timeoutMs: 10_000 });
      await ctx.session.writeFile(`/workspace/${rel}`, png);
      return {
        content: `Saved a ${png.length}-byte PNG of ${page.url()} to /workspace/${rel}`,
        filesChanged: [rel],
      };
    });
  },
};

export const browserBackTool: Tool<z.infer<typeof empty>> = {
  name: 'browser_back',
  risk: 'network',
  description: 'Go back to the previous page.',
  input: empty,
  describe: () => 'browser_back',
  async run(input, ctx) {
    const denied = await gate(browserBackTool as Tool<unknown>, input, ctx);
    if (denied) return denied;
    return act(browserBackTool.name, ctx, undefined, async (b) => {
      const page = await b.page();
      await page.goBack({ timeout: 30_000 });
      return { content: `Now at ${page.url()} — title: ${await page.title()}` };
    });
  },
};

export const browserDownloadsTool: Tool<z.infer<typeof empty>> = {
  name: 'browser_downloads',
  risk: 'network',
  description: `List files the browser downloaded (they are saved in ${DOWNLOADS_DIR}).`,
  input: empty,
  describe: () => 'browser_downloads',
  async run(input, ctx) {
    const denied = await gate(browserDownloadsTool as Tool<unknown>, input, ctx);
    if (denied) return denied;
    return act(browserDownloadsTool.name, ctx, undefined, async (b) => {
      const settled = await b.waitForDownloads(0, { beginMs: 0, timeoutMs: 30_000 });
      const pending = settled.filter((d) => d.state === 'inProgress');
      const entries = await ctx.session.list(DOWNLOADS_DIR).catch(() => []);
      const files = entries.filter((e) => e.type === 'file' && !e.name.endsWith('.crdownload'));
      const lines = files.map((f) => `${DOWNLOADS_DIR}/${f.name} (${f.size} bytes)`);
      if (pending.length) lines.push(describeDownloads(pending));
      if (lines.length === 0) return { content: `No downloads yet in ${DOWNLOADS_DIR}.` };
      return { content: lines.join('\n') };
    });
  },
};

export const BROWSER_TOOLS = [
  browserNavigateTool,
  browserSnapshotTool,
  browserClickTool,
  browserTypeTool,
  browserScreenshotTool,
  browserBackTool,
  browserDownloadsTool,
] as Tool<unknown>[];
