import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Origin } from '../../src/host/api/controller.js';
import type { RunningController } from '../../src/host/sandbox/serve.js';
import { Timeline } from '../../src/host/timeline/index.js';
import { AnthropicApiStandIn, reply, toolUse } from '../helpers/anthropic-api.js';
import { makeTestEnv, startTestSandbox, type TestSandboxEnv } from '../helpers/sandbox.js';
import { REPORT_BODY, SITE_TEXT, startTestSite, type TestSite } from '../helpers/test-site.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The browser tools end to end: a real QEMU guest booted from the `browser` image, the real
 * Chromium in it driven from the host over CDP through the SSH-forwarded DevTools port, the
 * real egress proxy as its only route out, the real controller (policy, approvals, timeline)
 * and the real agent loop whose model is the local Messages API stand-in, scripted to use
 * every browser tool once. The test site lives on the host's loopback and is reached under the
 * name site.test through the proxy's test resolver; denied.test is never resolved by anyone.
 *
 * One task runs in beforeAll (Chromium under TCG is slow); each `it` checks one outcome.
 */

const KEY = 'sk-ant-api03-browser-e2e-KEY-5a7d21';
const cli: Origin = { id: 'cli', context: 'local' };

// biome-ignore lint/suspicious/noExplicitAny: untyped wire JSON from the stand-in
type Wire = any;

interface ToolResultSeen {
  content: string;
  isError: boolean;
}

describe('browser tools in a real guest with the real Chromium', () => {
  let t: TestSandboxEnv;
  let site: TestSite;
  let api: AnthropicApiStandIn;
  let sb: RunningController;
  let timeline: Timeline;
  let answering: NodeJS.Timeout | undefined;
  let taskId = '';
  const timings: Record<string, number> = {};

  /** The tool_result the model was sent for the tool_use with this id. */
  function resultOf(toolUseId: string): ToolResultSeen {
    for (const r of api.messageRequests) {
      for (const m of r.body.messages as Wire[]) {
        if (m.role !== 'user' || !Array.isArray(m.content)) continue;
        for (const c of m.content as Wire[]) {
          if (c.type !== 'tool_result' || c.tool_use_id !== toolUseId) continue;
          const content = Array.isArray(c.content)
            ? (c.content as Wire[]).map((b) => b.text ?? '').join('\n')
            : String(c.content ?? '');
          return { content, isError: c.is_error === true };
        }
      }
    }
    return expect.fail(`the model was never sent a tool_result for ${toolUseId}`);
  }

  beforeAll(async () => {
    const t0 = Date.now();
    t = makeTestEnv('browser-e2e');
    site = await startTestSite();
    api = await AnthropicApiStandIn.start({ apiKey: KEY });
    const configFile = join(t.root, 'config.toml');
    writeFileSync(
      configFile,
      [
        '[egress]',
        `allow = ["site.test:${site.port}"]`,
        '',
        '[egress.testResolve]',
        '"site.test" = "127.0.0.1"',
        '',
      ].join('\n'),
    );
    sb = await startTestSandbox(t, {
      image: 'browser',
      memoryMiB: 2048,
      configFile,
      env: {
        ...t.env,
        COWORK_VM_TEST_RESOLVE: '1',
        ANTHROPIC_BASE_URL: api.baseURL,
        ANTHROPIC_API_KEY: KEY,
      },
    });
    timings.bootMs = Date.now() - t0;
    timeline = Timeline.open(sb.controller.timelinePath);
    // Browser tools without an allow-listed URL in their input ask (risk: network): approve
    // every pending approval, as a user at the terminal would.
    answering = setInterval(() => {
      for (const p of sb.controller.approvalsList()) {
        try {
          sb.controller.approvalsAnswer(p.id, { kind: 'approve-once' }, cli);
        } catch {
          /* answered already */
        }
      }
    }, 100);

    const home = `http://site.test:${site.port}/`;
    api.enqueue(
      reply([toolUse('browser_navigate', { url: home }, 'toolu_nav')]),
      reply([toolUse('browser_snapshot', {}, 'toolu_snap1')]),
      reply([toolUse('browser_click', { text: SITE_TEXT.button }, 'toolu_click')]),
      reply([toolUse('browser_snapshot', {}, 'toolu_snap2')]),
      reply([toolUse('browser_type', { selector: '#name', text: 'Ada Lovelace' }, 'toolu_type')]),
      reply([toolUse('browser_snapshot', {}, 'toolu_snap3')]),
      reply([toolUse('browser_screenshot', { path: 'shots/page.png' }, 'toolu_shot')]),
      reply([toolUse('browser_click', { text: SITE_TEXT.link }, 'toolu_dl')]),
      reply([toolUse('browser_downloads', {}, 'toolu_downloads')]),
      reply([toolUse('browser_navigate', { url: 'http://denied.test/' }, 'toolu_denied')]),
      reply([toolUse('task_complete', { summary: 'used the browser' }, 'toolu_done')]),
    );
    const t1 = Date.now();
    taskId = (await sb.controller.tasksStart({ prompt: 'exercise the browser' }, cli)).id;
    await waitFor(() => timeline.getTask(taskId)?.status !== 'running', 'the browser task to finish', {
      timeoutMs: 900_000,
      intervalMs: 100,
    });
    timings.taskMs = Date.now() - t1;
    const actions = timeline.query({ taskId, types: ['browser.action'] }) as { data: Wire }[];
    const steps = actions.map((a) => `${a.data.action}:${a.data.outcome}`).join(' ');
    console.log(`browser e2e: boot ${timings.bootMs} ms, task ${timings.taskMs} ms — ${steps}`);
  }, 1_200_000);

  afterAll(async () => {
    if (answering) clearInterval(answering);
    timeline?.close();
    await sb?.shutdown();
    await api?.close();
    await site?.close();
    t?.cleanup();
  }, 120_000);

  it('the task ran every scripted step and completed', () => {
    const task = timeline.getTask(taskId);
    expect(task.status, JSON.stringify(task)).toBe('completed');
    expect(task.summary).toBe('used the browser');
    expect(api.pending).toBe(0);
  });

  it('navigates to the allowed site through the egress proxy and the snapshot the model got has the page text', () => {
    const nav = resultOf('toolu_nav');
    expect(nav.isError, nav.content).toBe(false);
    expect(nav.content).toContain(`http://site.test:${site.port}/`);
    expect(nav.content).toContain('HTTP 200');
    expect(nav.content).toContain('Cowork test site');
    const snap = resultOf('toolu_snap1');
    expect(snap.isError, snap.content).toBe(false);
    expect(snap.content).toContain(SITE_TEXT.heading);
    expect(snap.content).toContain(SITE_TEXT.before);
    expect(snap.content).not.toContain(SITE_TEXT.after);
    // The page reached the host's test server under its .test name: through the proxy, never directly.
    const page = site.seen.find((r) => r.url === '/');
    expect(page?.headers.host).toBe(`site.test:${site.port}`);
  });

  it('clicks the button and the next snapshot shows the changed text', () => {
    const click = resultOf('toolu_click');
    expect(click.isError, click.content).toBe(false);
    const snap = resultOf('toolu_snap2');
    expect(snap.content).toContain(SITE_TEXT.after);
    expect(snap.content).not.toContain(SITE_TEXT.before);
  });

  it('types into the field and the page reacts to the typed text', () => {
    const typed = resultOf('toolu_type');
    expect(typed.isError, typed.content).toBe(false);
    expect(resultOf('toolu_snap3').content).toContain('Hello, Ada Lovelace');
  });

  it('writes a valid PNG screenshot into the workspace on the host', () => {
    const shot = resultOf('toolu_shot');
    expect(shot.isError, shot.content).toBe(false);
    expect(shot.content).toContain('/workspace/shots/page.png');
    const file = join(sb.workspace, 'shots', 'page.png');
    expect(existsSync(file)).toBe(true);
    const png = readFileSync(file);
    expect(png.length).toBeGreaterThan(1024);
    expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(
      true,
    );
    expect(png.subarray(12, 16).toString('latin1')).toBe('IHDR');
    const width = png.readUInt32BE(16);
    const height = png.readUInt32BE(20);
    expect(width).toBeGreaterThanOrEqual(200);
    expect(width).toBeLessThanOrEqual(4096);
    expect(height).toBeGreaterThanOrEqual(150);
    expect(height).toBeLessThanOrEqual(4096);
  });

  it('downloads the attachment into <workspace>/downloads with its content, and browser_downloads lists it', () => {
    const dl = resultOf('toolu_dl');
    expect(dl.isError, dl.content).toBe(false);
    // The click waits for Chromium to finish the download and tells the model where it is.
    expect(dl.content).toContain(
      `Downloaded /workspace/downloads/${SITE_TEXT.fileName} (${Buffer.byteLength(REPORT_BODY)} bytes)`,
    );
    const file = join(sb.workspace, 'downloads', SITE_TEXT.fileName);
    expect(existsSync(file)).toBe(true);
    expect(readFileSync(file, 'utf8')).toBe(REPORT_BODY);
    expect(statSync(file).size).toBe(Buffer.byteLength(REPORT_BODY));
    const listed = resultOf('toolu_downloads');
    expect(listed.isError, listed.content).toBe(false);
    expect(listed.content).toContain(
      `/workspace/downloads/${SITE_TEXT.fileName} (${Buffer.byteLength(REPORT_BODY)} bytes)`,
    );
  });

  it('navigation to a host the egress policy does not allow fails with the policy reason', () => {
    const denied = resultOf('toolu_denied');
    expect(denied.isError).toBe(true);
    expect(denied.content).toMatch(/^Blocked by the egress policy: /);
    expect(denied.content).toContain('denied.test');
    // Nothing asked the test site for it, and the model could go on.
    expect(site.seen.some((r) => r.headers.host?.startsWith('denied.test'))).toBe(false);
  });

  it("Chromium's own requests go through the egress proxy: the site is allowed, an image on a denied host is refused", () => {
    const egress = timeline.query({ types: ['egress.request'] }).map((e) => (e as { data: Wire }).data);
    expect(egress).toContainEqual(
      expect.objectContaining({ host: 'site.test', port: site.port, decision: 'allow' }),
    );
    expect(egress).toContainEqual(
      expect.objectContaining({ host: 'denied.test', port: 80, decision: 'deny' }),
    );
    expect(site.seen.map((r) => r.url)).not.toContain('/pixel.png');
  });

  it('tools acting on an allowed page are judged by its URL: no approval for snapshot or typing', () => {
    const asked = timeline
      .query({ taskId, types: ['approval.asked'] })
      .map((e) => (e as { data: Wire }).data.tool);
    for (const name of ['browser_snapshot', 'browser_type', 'browser_click'])
      expect(asked, name).not.toContain(name);
  });

  it('each tool call got exactly one policy decision and at most one approval request', () => {
    const perCall = new Map<string, { name: string; decisions: number; approvals: number }>();
    let current: { name: string; decisions: number; approvals: number } | undefined;
    for (const e of timeline.query({ taskId }) as { type: string; data: Wire }[]) {
      if (e.type === 'tool.call') {
        current = { name: e.data.name, decisions: 0, approvals: 0 };
        perCall.set(e.data.toolUseId, current);
      } else if (e.type === 'tool.result') current = undefined;
      else if (current && e.type === 'policy.decision') current.decisions++;
      else if (current && e.type === 'approval.asked') current.approvals++;
    }
    expect(perCall.size).toBe(11);
    for (const [id, c] of perCall) {
      expect(c.decisions, `${c.name} (${id})`).toBe(id === 'toolu_done' ? 0 : 1);
      expect(c.approvals, `${c.name} (${id})`).toBeLessThanOrEqual(1);
    }
    // On the allowed page, the screenshot's page and file are one decision, and it needs no prompt.
    expect(perCall.get('toolu_shot')).toMatchObject({ decisions: 1, approvals: 0 });
  });

  it('the timeline has a browser.action per step with its URL and outcome', () => {
    const actions = timeline
      .query({ taskId, types: ['browser.action'] })
      .map((e) => (e as { data: Wire }).data);
    const home = `http://site.test:${site.port}/`;
    expect(actions).toContainEqual(
      expect.objectContaining({ action: 'browser_navigate', url: home, outcome: 'ok' }),
    );
    expect(actions).toContainEqual(
      expect.objectContaining({ action: 'browser_click', url: home, outcome: 'ok' }),
    );
    expect(actions).toContainEqual(
      expect.objectContaining({
        action: 'browser_navigate',
        url: 'http://denied.test/',
        outcome: 'denied',
        detail: expect.stringContaining('denied.test'),
      }),
    );
    for (const name of ['browser_snapshot', 'browser_type', 'browser_screenshot', 'browser_downloads']) {
      expect(actions.filter((a) => a.action === name && a.outcome === 'ok').length, name).toBeGreaterThan(0);
    }
    expect(actions.filter((a) => a.outcome === 'error')).toEqual([]);
  });
});
