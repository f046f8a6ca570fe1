import { z } from 'zod';
import { type BrowserDownload, DOWNLOADS_DIR } from '../browser/guest-browser.js';
import { abridge } from './abridge.js';
import type { BrowserHandle, BrowserPage } from './browser-handle.js';
import { guestPath, workspaceRelative } from './guest-path.js';
import type { Tool, ToolContext, ToolResult } from './types.js';

/**
 * Browser tools (risk: network). Chromium runs in the guest behind the egress proxy. Each tool
 * declares the URL it opens or acts on (and any workspace file it writes); the loop asks the
 * policy once for the call (recorded), checks an opened URL against the egress rules, and only
 * then runs the tool with the task's browser. Every step logs a browser.action event with the
 * URL and the outcome. Screenshots are written into the workspace through a guest file grant for
 * exactly the decided path, never onto the host filesystem.
 */

const SNAPSHOT_CAP = 24_000;
type BrowserTool<I> = Tool<I, 'browser'>;

async function act(
  name: string,
  ctx: ToolContext<'browser'>,
  fn: (b: BrowserHandle) => Promise<ToolResult>,
): Promise<ToolResult> {
  const url = ctx.browser.url;
  try {
    const result = await fn(ctx.browser);
    ctx.record({ type: 'browser.action', action: name, url, outcome: result.isError ? 'error' : 'ok' });
    return result;
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0] ?? String(err);
    ctx.record({ type: 'browser.action', action: name, url, outcome: 'error', detail: msg.slice(0, 500) });
    return { content: `${name} failed: ${msg}`, isError: true };
  }
}

const urlInput = z.object({ url: z.string().url().describe('Absolute http(s) URL to open.') }).strict();
export const browserNavigateTool: BrowserTool<z.infer<typeof urlInput>> = {
  name: 'browser_navigate',
  risk: 'network',
  access: 'browser',
  description:
    'Open a URL in the headless browser (runs in the VM; only hosts the egress policy allows are reachable).',
  input: urlInput,
  describe: (i) => `browser_navigate ${i.url}`,
  claim: (i) => ({ kind: 'browser', url: i.url }),
  async run(_input, ctx) {
    return act(browserNavigateTool.name, ctx, async (b) => {
      const page = await b.page();
      const res = await b.open({ timeoutMs: 60_000 });
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
export const browserSnapshotTool: BrowserTool<z.infer<typeof empty>> = {
  name: 'browser_snapshot',
  risk: 'network',
  access: 'browser',
  description: 'The accessible text of the current page (roles, names, text), size-capped.',
  input: empty,
  describe: () => 'browser_snapshot',
  claim: () => ({ kind: 'browser' }),
  async run(_input, ctx) {
    return act(browserSnapshotTool.name, ctx, async (b) => {
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

function locate(page: BrowserPage, t: { selector?: string; text?: string }) {
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

export const browserClickTool: BrowserTool<z.infer<typeof target>> = {
  name: 'browser_click',
  risk: 'network',
  access: 'browser',
  description: 'Click an element of the current page (by CSS selector or by its text).',
  input: target,
  describe: (i) => `browser_click ${i.selector ?? JSON.stringify(i.text)}`,
  // Judged, checked and recorded by the page it clicks on.
  claim: async (_i, env) => ({ kind: 'browser', url: await env.pageUrl() }),
  async run(input, ctx) {
    return act(browserClickTool.name, ctx, async (b) => {
      const page = await b.page();
      const el = locate(page, input);
      const href = await el.getAttribute('href', { timeout: 10_000 }).catch(() => null);
      if (href) {
        const next = new URL(href, page.url()).toString();
        const egress = b.checkUrl(next);
        if (!egress.allowed)
          return { content: `Blocked by the egress policy: ${egress.reason}`, isError: true, denied: true };
      }
      const downloadsBefore = (await b.downloads()).length;
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
export const browserTypeTool: BrowserTool<z.infer<typeof typeInput>> = {
  name: 'browser_type',
  risk: 'network',
  access: 'browser',
  description: 'Type text into a field of the current page (optionally press Enter).',
  input: typeInput,
  describe: (i) => `browser_type ${i.selector} (${i.text.length} chars)`,
  claim: () => ({ kind: 'browser' }),
  async run(input, ctx) {
    return act(browserTypeTool.name, ctx, async (b) => {
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
/**
 * A busy (emulated) guest sometimes loses the frame Chromium captures from — its GPU process
 * died and is being restarted: wait for it, longer each time (about 20 s in all), then try again.
 */
const SHOT_RETRY_WAITS_MS = [1000, 2000, 4000, 6000, 8000];
async function captureScreenshot(page: BrowserPage, fullPage: boolean): Promise<Buffer> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await page.screenshot({ fullPage, timeout: 60_000 });
    } catch (err) {
      const wait = SHOT_RETRY_WAITS_MS[attempt];
      if (wait === undefined || !/Unable to capture screenshot/.test((err as Error).message)) throw err;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

export const browserScreenshotTool: BrowserTool<z.infer<typeof shotInput>> = {
  name: 'browser_screenshot',
  risk: 'network',
  access: 'browser',
  description: 'Take a PNG screenshot of the current page and save it into the workspace; returns its path.',
  input: shotInput,
  describe: (i) => `browser_screenshot ${i.path ?? ''}`.trim(),
  // One decision covers both the page (its URL) and the file the PNG is written to.
  claim: (i) => ({
    kind: 'browser',
    paths: [
      {
        path: guestPath(i.path ?? `screenshots/${new Date().toISOString().replace(/[:.]/g, '-')}.png`),
        access: 'write',
      },
    ],
  }),
  async run(input, ctx) {
    const [shot] = ctx.files.paths;
    if (!shot) return { content: 'browser_screenshot was decided without a file to write', isError: true };
    return act(browserScreenshotTool.name, ctx, async (b) => {
      const page = await b.page();
      const png = await captureScreenshot(page, input.fullPage ?? false);
      // The grant creates the parent folders (the folder is one quoted word) and writes only this path.
      await ctx.files.writeFile(shot.path, png);
      return {
        content: `Saved a ${png.length}-byte PNG of ${page.url()} to ${shot.path}`,
        filesChanged: [workspaceRelative(shot.path)],
      };
    });
  },
};

export const browserBackTool: BrowserTool<z.infer<typeof empty>> = {
  name: 'browser_back',
  risk: 'network',
  access: 'browser',
  description: 'Go back to the previous page.',
  input: empty,
  describe: () => 'browser_back',
  claim: () => ({ kind: 'browser' }),
  async run(_input, ctx) {
    return act(browserBackTool.name, ctx, async (b) => {
      const page = await b.page();
      await page.goBack({ timeout: 30_000 });
      return { content: `Now at ${page.url()} — title: ${await page.title()}` };
    });
  },
};

export const browserDownloadsTool: BrowserTool<z.infer<typeof empty>> = {
  name: 'browser_downloads',
  risk: 'network',
  access: 'browser',
  description: `List files the browser downloaded (they are saved in ${DOWNLOADS_DIR}).`,
  input: empty,
  describe: () => 'browser_downloads',
  // The listing is a read of the downloads folder: declared, so Read rules apply to it too.
  claim: () => ({ kind: 'browser', paths: [{ path: DOWNLOADS_DIR, access: 'read', scope: 'entries' }] }),
  async run(_input, ctx) {
    return act(browserDownloadsTool.name, ctx, async (b) => {
      const settled = await b.waitForDownloads(0, { beginMs: 0, timeoutMs: 30_000 });
      const pending = settled.filter((d) => d.state === 'inProgress');
      const entries = await ctx.files.list(DOWNLOADS_DIR).catch(() => []);
      const withheld = new Set(ctx.files.withheld.map((w) => w.replace(/\/$/, '')));
      const files = entries.filter(
        (e) => e.type === 'file' && !e.name.endsWith('.crdownload') && !withheld.has(e.name),
      );
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
] as Tool<unknown, 'browser'>[];
