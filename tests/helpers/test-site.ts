import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A tiny web site on the host's loopback for the browser end-to-end test, reached from the
 * guest's Chromium only through the egress proxy (under a `.test` name the test resolver maps
 * to 127.0.0.1). One page with a button that changes the page text, an input field whose value
 * is echoed into the page, a link to a file served as an attachment, and an image on a host the
 * egress policy denies (Chromium's own request for it must be refused by the proxy).
 */
export const SITE_TEXT = {
  heading: 'Browser test page',
  before: 'Waiting for a click',
  after: 'The button was clicked',
  button: 'Change the text',
  link: 'Download the report',
  fileName: 'report.txt',
} as const;

export const REPORT_BODY = `quarterly report 7c1e9a\n${'line of the report\n'.repeat(64)}`;

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Cowork test site</title>
<style>body{font:18px sans-serif;margin:2em;background:#f4f7fb}h1{color:#1b4d89}button{font-size:18px}</style>
</head><body>
<h1>${SITE_TEXT.heading}</h1>
<p id="status">${SITE_TEXT.before}</p>
<button id="go" onclick="document.getElementById('status').textContent='${SITE_TEXT.after}'">${SITE_TEXT.button}</button>
<p><label for="name">Your name</label>
<input id="name" type="text" oninput="document.getElementById('echo').textContent='Hello, '+this.value"></p>
<p id="echo"></p>
<p><a href="/files/${SITE_TEXT.fileName}">${SITE_TEXT.link}</a></p>
<img alt="" width="1" height="1" src="http://denied.test/pixel.png">
</body></html>
`;

export interface SiteRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

export interface TestSite {
  port: number;
  seen: SiteRequest[];
  close(): Promise<void>;
}

export async function startTestSite(): Promise<TestSite> {
  const seen: SiteRequest[] = [];
  const server: Server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(PAGE);
    } else if (req.url === `/files/${SITE_TEXT.fileName}`) {
      res.writeHead(200, {
        'content-type': 'text/plain',
        'content-disposition': `attachment; filename="${SITE_TEXT.fileName}"`,
        'content-length': Buffer.byteLength(REPORT_BODY),
      });
      res.end(REPORT_BODY);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
