import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryApprovalBroker } from '../../src/host/approvals/index.js';
import type { ApprovalOutcome, ApprovalRequest } from '../../src/host/approvals/types.js';
import { DesktopNotifier } from '../../src/host/notify/index.js';
import { type PrivateBus, startPrivateBus } from '../helpers/dbus.js';
import { type NotificationServer, startNotificationServer } from '../helpers/desktop-bus.js';
import { waitFor } from '../helpers/wait.js';

/*
 * The notification frontend against a real dbus-daemon (a private one) and a notification
 * server implemented by the test, with a real approval broker; no guest (the guest path is in
 * tests/e2e/desktop-guest.test.ts).
 */

const REQ: ApprovalRequest = {
  tool: 'shell',
  command: 'rm -rf build',
  cwd: '/workspace',
  risk: 'destructive',
  context: 'agent',
  reasons: ['rm is not covered by an allow rule'],
  taskId: 't-12',
};

function attach(bus: PrivateBus, broker: MemoryApprovalBroker, notices: string[]) {
  return DesktopNotifier.start({
    approvals: broker,
    address: bus.address,
    answer: (id, verdict, origin) => broker.answer(id, { ...verdict, by: origin.id }),
    onNotice: (l) => notices.push(l),
  });
}

describe('desktop notifications with a notification server on the bus', () => {
  let bus: PrivateBus;
  let server: NotificationServer;
  let notifier: DesktopNotifier | undefined;
  const notices: string[] = [];
  const broker = new MemoryApprovalBroker();

  beforeAll(async () => {
    bus = await startPrivateBus();
    server = await startNotificationServer(bus.address);
    notifier = await attach(bus, broker, notices);
    expect(notifier).toBeDefined();
  });
  afterAll(async () => {
    notifier?.close();
    server?.stop();
    await bus?.stop();
  });

  it('a pending approval raises Notify with Approve/Deny, critical urgency and its remaining time; approve answers it', async () => {
    const outcome = broker.request(REQ, { timeoutMs: 60_000 });
    await waitFor(() => server.notified.length === 1, 'Notify was never called');
    const n = server.notified[0]!;
    expect(n.appName).toBe('cowork-vm');
    expect(n.summary).toBe('Approve shell for task t-12?');
    expect(n.body).toContain('rm -rf build');
    expect(n.body).toContain('in /workspace');
    expect(n.body).toContain('why: rm is not covered by an allow rule');
    expect(n.actions).toEqual(['approve', 'Approve', 'deny', 'Deny']);
    expect(n.hints.urgency).toBe(2);
    expect(n.expireTimeout).toBeGreaterThan(0);
    expect(n.expireTimeout).toBeLessThanOrEqual(60_000);
    server.invoke(n.id, 'approve');
    const v: ApprovalOutcome = await outcome;
    expect(v).toMatchObject({ kind: 'approve-once', by: 'notification' });
  });

  it('deny answers deny; answered elsewhere closes the notification; dismissing answers nothing', async () => {
    const denied = broker.request(REQ, { timeoutMs: 60_000 });
    await waitFor(() => server.notified.length === 2, 'second Notify');
    server.invoke(server.notified[1]!.id, 'deny');
    expect(await denied).toMatchObject({ kind: 'deny', by: 'notification' });

    const elsewhere = broker.request(REQ, { timeoutMs: 60_000 });
    await waitFor(() => server.notified.length === 3, 'third Notify');
    const third = server.notified[2]!;
    const pending = broker.list()[0]!;
    broker.answer(pending.id, { kind: 'approve-once', by: 'cli' });
    expect(await elsewhere).toMatchObject({ kind: 'approve-once', by: 'cli' });
    await waitFor(() => server.closed.includes(third.id), 'CloseNotification was never called');
  });

  it('a forged ActionInvoked from another bus peer does not answer the approval', async () => {
    const outcome = broker.request(REQ, { timeoutMs: 60_000 });
    await waitFor(() => server.notified.length === 4, 'fourth Notify');
    const n = server.notified[3]!;
    // An attacker on the bus: a broadcast ActionInvoked and one sent straight to the notifier.
    const dbus = createRequire(import.meta.url)('@homebridge/dbus-native');
    const evil = dbus.sessionBus({ busAddress: bus.address });
    await waitFor(() => Boolean(evil.name), 'attacker connection');
    const forged = {
      type: 4,
      path: '/org/freedesktop/Notifications',
      interface: 'org.freedesktop.Notifications',
      member: 'ActionInvoked',
      signature: 'us',
      body: [n.id, 'approve'],
    };
    evil.connection.message({ ...forged, serial: 100 });
    evil.connection.message({ ...forged, serial: 101, destination: n.sender });
    // A round trip of the attacker's: the bus has routed both forgeries before it answers, so
    // they reach the notifier ahead of the real server's deny below.
    await new Promise<void>((r) => evil.getNameOwner('org.freedesktop.Notifications', () => r()));
    evil.connection.end();
    server.invoke(n.id, 'deny');
    expect(await outcome).toMatchObject({ kind: 'deny', by: 'notification' });
  });

  it('a click that arrives right behind the Notify reply still answers', async () => {
    for (const action of ['approve', 'deny'] as const) {
      server.autoInvoke = action;
      const outcome = await broker.request(REQ, { timeoutMs: 60_000 });
      expect(outcome).toMatchObject({
        kind: action === 'approve' ? 'approve-once' : 'deny',
        by: 'notification',
      });
    }
    server.autoInvoke = undefined;
  });

  it('markup in a command is escaped when the server reads markup', async () => {
    const outcome = broker.request(
      { ...REQ, command: 'echo <a href="x">ok</a> & <b>' },
      { timeoutMs: 60_000 },
    );
    await waitFor(() => server.notified.length === 7, 'the seventh Notify');
    expect(server.notified[6]!.body).toContain('echo &lt;a href="x"&gt;ok&lt;/a&gt; &amp; &lt;b&gt;');
    server.invoke(server.notified[6]!.id, 'deny');
    await outcome;
    expect(notices).toEqual([]);
  });
});

describe('desktop notifications without a server', () => {
  it('no notification server: one notice, approvals still work', async () => {
    const bus = await startPrivateBus();
    const notices: string[] = [];
    const broker = new MemoryApprovalBroker();
    const notifier = await attach(bus, broker, notices);
    try {
      const a = broker.request(REQ, { timeoutMs: 60_000 });
      const b = broker.request(REQ, { timeoutMs: 60_000 });
      await waitFor(() => notices.length > 0, 'no notice');
      for (const p of broker.list()) broker.answer(p.id, { kind: 'deny', by: 'cli' });
      expect(await a).toMatchObject({ kind: 'deny', by: 'cli' });
      expect(await b).toMatchObject({ kind: 'deny', by: 'cli' });
      expect(notices).toEqual([
        'no notification server on the D-Bus session bus (org.freedesktop.Notifications): approvals are not shown as desktop notifications',
      ]);
    } finally {
      notifier?.close();
      await bus.stop();
    }
  });

  it('a server that appears later gets the approvals that wait', async () => {
    const bus = await startPrivateBus();
    const broker = new MemoryApprovalBroker();
    const notices: string[] = [];
    const notifier = await attach(bus, broker, notices);
    const outcome = broker.request(REQ, { timeoutMs: 60_000 });
    await waitFor(() => notices.length === 1, 'the missing-server notice');
    const server = await startNotificationServer(bus.address);
    try {
      await waitFor(() => server.notified.length === 1, 'Notify after the server appeared');
      server.invoke(server.notified[0]!.id, 'approve');
      expect(await outcome).toMatchObject({ kind: 'approve-once', by: 'notification' });
    } finally {
      notifier?.close();
      server.stop();
      await bus.stop();
    }
  });

  it('an activatable server that never comes up is started once, not once per approval', async () => {
    const services = mkdtempSync(join(tmpdir(), 'cvm-services-'));
    const counter = join(services, 'activations');
    writeFileSync(counter, '');
    writeFileSync(
      join(services, 'org.freedesktop.Notifications.service'),
      `[D-BUS Service]\nName=org.freedesktop.Notifications\nExec=/bin/sh -c "echo started >> ${counter}"\n`,
    );
    const bus = await startPrivateBus({ serviceDir: services });
    const broker = new MemoryApprovalBroker();
    const notices: string[] = [];
    const notifier = await attach(bus, broker, notices);
    let server: NotificationServer | undefined;
    try {
      const waits = [broker.request(REQ, { timeoutMs: 60_000 })];
      await waitFor(() => notices.length > 0, 'the missing-server notice', { timeoutMs: 30_000 });
      expect(notices[0]).toMatch(/starting one failed: .*org\.freedesktop\.Notifications/);
      expect(readFileSync(counter, 'utf8')).toBe('started\n');
      // Three more while no server runs: none of them may ask the bus to start one.
      for (let i = 0; i < 3; i++) waits.push(broker.request(REQ, { timeoutMs: 60_000 }));
      // Once a server owns the name, every waiting approval is shown: the calls before it have
      // all been routed by then, so an activation they caused would have been spawned.
      server = await startNotificationServer(bus.address);
      await waitFor(() => server?.notified.length === 4, 'the four approvals shown by the new server');
      for (const p of broker.list()) broker.answer(p.id, { kind: 'deny', by: 'cli' });
      await Promise.all(waits);
      expect(readFileSync(counter, 'utf8')).toBe('started\n');
      expect(notices).toHaveLength(1);
    } finally {
      notifier?.close();
      server?.stop();
      await bus.stop();
      rmSync(services, { recursive: true, force: true });
    }
  });

  it('no session bus at all: one notice and no notifier', async () => {
    const notices: string[] = [];
    const broker = new MemoryApprovalBroker();
    const n = await DesktopNotifier.start({
      approvals: broker,
      address: 'unix:path=/nonexistent/cowork-vm-test-bus',
      answer: () => {},
      onNotice: (l) => notices.push(l),
    });
    expect(n).toBeUndefined();
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(
      /^desktop notifications are off: cannot connect to the D-Bus session bus at unix:path=\/nonexistent/,
    );
  });
});
