import type { Page, Response } from 'playwright-core';
import type { BrowserDownload, GuestBrowser } from '../browser/guest-browser.js';
import { CoworkError } from '../errors.js';
import type { TaskBrowser, UrlCheck } from './types.js';

/**
 * The page as a browser tool may drive it: reading and acting on what is shown, not opening an
 * address of its own choosing (the decided URL is opened with `BrowserHandle.open`), nor the
 * parts of Playwright that act from the HOST — `request` and `route` fetch from the host's
 * network, `screenshot({ path })` and `routeFromHAR` touch host files. Links a call follows are
 * checked with `checkUrl`, and the egress proxy judges every request the guest's Chromium makes.
 */
export type BrowserPage = Pick<
  Page,
  'url' | 'title' | 'locator' | 'getByRole' | 'getByText' | 'waitForLoadState' | 'goBack'
> & {
  /** The PNG as bytes; where it goes is the tool's file grant's business. */
  screenshot(opts: { fullPage: boolean; timeout: number }): Promise<Buffer>;
};

/** The task's browser for one decided call. */
export interface BrowserHandle {
  /** The URL the decision was about (the page opened or acted on), when the claim named one. */
  readonly url: string | undefined;
  page(): Promise<BrowserPage>;
  /** Opens the decided URL in the page. */
  open(opts: { timeoutMs: number }): Promise<Response | null>;
  /** Egress verdict for a URL the call is about to follow (a link's target). */
  checkUrl: UrlCheck;
  /** Downloads of this browser, oldest first. */
  downloads(): Promise<BrowserDownload[]>;
  waitForDownloads(since: number, opts: { beginMs: number; timeoutMs: number }): Promise<BrowserDownload[]>;
}

/** The current page's URL, or undefined when there is no browser or page yet. */
export async function currentPageUrl(task: TaskBrowser): Promise<string | undefined> {
  try {
    return (await (await task.browser()).page()).url();
  } catch {
    return undefined;
  }
}

export function browserHandle(task: TaskBrowser, url: string | undefined): BrowserHandle {
  const guest = (): Promise<GuestBrowser> => task.browser();
  return {
    url,
    page: async () => (await guest()).page(),
    async open(opts) {
      if (url === undefined)
        throw new CoworkError('internal', 'this browser call was not decided for a URL to open');
      return (await (await guest()).page()).goto(url, { waitUntil: 'load', timeout: opts.timeoutMs });
    },
    checkUrl: (u) => task.checkUrl(u),
    downloads: async () => (await guest()).downloads(),
    waitForDownloads: async (since, opts) => (await guest()).waitForDownloads(since, opts),
  };
}
