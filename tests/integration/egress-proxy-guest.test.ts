import type http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryApprovalBroker } from '../../src/host/approvals/index.js';
import { type EgressEvent, EgressProxy } from '../../src/host/egress/index.js';
import { CoworkError } from '../../src/host/errors.js';
import type { Sandbox } from '../../src/host/sandbox/sandbox.js';
import { ensureSandboxKeys } from '../../src/host/ssh/keys.js';
import { connectSsh } from '../../src/host/ssh/ssh-connection.js';
import { Timeline } from '../../src/host/timeline/index.js';
import { closeServer, type SeenRequest, startOrigin } from '../helpers/egress.js';
import { makeTestEnv, startGuestBehindProxy, type TestSandboxEnv } from '../helpers/sandbox.js';
import { waitFor } from '../helpers/wait.js';

// Egress from a real QEMU guest (TCG): the proxy on host loopback is the guest's only way out,
// reached on the guest's own 127.0.0.1:3128, where the host's SSH session has sshd listen and
// carries each connection to the proxy (no route out at all: restrict=on, no guestfwd). Test sites are `.test`
// names mapped to 127.0.0.1 by the test resolver; the dialer sends port 80 to the local origin.

const GUEST_PROXY = 'http://127.0.0.1:3128';

let t: TestSandboxEnv;
let sandbox: Sandbox;
let proxy: EgressProxy;
let timeline: Timeline;
let broker: MemoryApprovalBroker;
let origin: { server: http.Server; port: number; seen: SeenRequest[] };
const events: EgressEvent[] = [];

beforeAll(async () => {
  t = makeTestEnv('egress-guest');
  origin = await startOrigin();
  timeline = Timeline.open(join(t.root, 'timeline.db'));
  broker = new MemoryApprovalBroker({ timeline });
  proxy = new EgressProxy({
    // CONNECT to port 80 needs a rule that names the port (a port-less rule means 443 for CONNECT).
    rules: { allow: ['site.test', 'site.test:80'], deny: ['denied.test'], ask: true },
    testResolve: {
      'site.test': '127.0.0.1',
      'ask.test': '127.0.0.1',
      'denied.test': '127.0.0.1',
      'no.test': '127.0.0.1',
    },
    allowTestResolve: true,
    broker,
    timeline,
    onEvent: (e) => events.push(e),
    dial: ({ address, port }) => net.connect(port === 80 || port === 443 ? origin.port : port, address),
  });
  const { port: proxyPort } = await proxy.start();
  sandbox = await startGuestBehindProxy(t, proxyPort);
});

afterAll(async () => {
  await sandbox?.stop();
  await proxy?.close();
  timeline?.close();
  if (origin) await closeServer(origin.server);
  t?.cleanup();
});

async function sh(command: string, timeoutMs = 60_000) {
  return sandbox.exec(command, { timeoutMs });
}

/** curl in the guest printing the body then a last line with the HTTP status (000 = no answer). */
async function curl(args: string): Promise<{ status: string; body: string; exitCode: number | null }> {
  const r = await sh(`curl -sS -m 20 -w '\\n%{http_code}' ${args}`);
  const lines = r.stdout.split('\n');
  return { status: lines.at(-1) ?? '', body: lines.slice(0, -1).join('\n'), exitCode: r.exitCode };
}

describe('egress from a real guest', () => {
  it('gets the proxy in its environment', async () => {
    const r = await sh('echo "$HTTP_PROXY $https_proxy"');
    expect(r.stdout.trim()).toBe(`${GUEST_PROXY} ${GUEST_PROXY}`);
  });

  it('reaches an allowed site through the proxy, forwarded and tunnelled', async () => {
    const plain = await curl('http://site.test/from-guest');
    expect(plain.status).toBe('200');
    expect(JSON.parse(plain.body)).toMatchObject({ url: '/from-guest' });
    const tunnelled = await curl('-p http://site.test/tunnelled'); // -p: CONNECT through the proxy
    expect(tunnelled.status).toBe('200');
    expect(origin.seen.map((s) => s.url)).toEqual(['/from-guest', '/tunnelled']);
    // A tunnel's event is recorded when the tunnel closes, which may be just after curl returns.
    const allowed = () => events.filter((e) => e.decision === 'allow').map((e) => e.kind);
    await waitFor(() => allowed().length >= 2, 'both allow events', { detail: () => JSON.stringify(events) });
    expect(allowed()).toEqual(['http', 'connect']);
  });

  it('gets a 403 with the policy reason for a denied site, and the timeline has it', async () => {
    const denied = await curl('http://denied.test/');
    expect(denied.status).toBe('403');
    expect(denied.body).toContain('Blocked by the cowork-vm egress policy');
    expect(denied.body).toContain('denied.test is on the egress deny list');
    const stored = timeline.query({ types: ['egress.request'] }).map((e) => e.data);
    expect(stored).toContainEqual(
      expect.objectContaining({ host: 'denied.test', decision: 'deny', stage: 'deny-list' }),
    );
  });

  it('waits for an approval and goes through once a user approves', async () => {
    const answered = new Promise<void>((resolve) => {
      broker.on('pending', (p) => {
        if (p.tool === 'egress' && p.command === 'GET http://ask.test/asked') {
          broker.answer(p.id, { kind: 'approve-once', by: 'test' });
          resolve();
        }
      });
    });
    const r = await curl('http://ask.test/asked');
    await answered;
    expect(r.status).toBe('200');
    expect(origin.seen.at(-1)?.url).toBe('/asked');
  });

  it('refuses SSRF spellings sent from the guest through the proxy', async () => {
    const hosts = [
      '127.0.0.1',
      '2130706433',
      '0x7f.1',
      '0177.0.0.1',
      '127.1',
      'localhost',
      '10.0.2.2',
      '169.254.169.254',
      '[::1]',
      '[::ffff:127.0.0.1]',
      'metadata.google.internal',
      '0.0.0.0',
    ];
    const script = hosts
      .map(
        (h) =>
          `curl -s -o /dev/null -m 20 --noproxy '' -x ${GUEST_PROXY} -w '%{http_code} ${h}\\n' 'http://${h}/'`,
      )
      .join('; ');
    const r = await sh(script, 120_000);
    expect(r.stdout.trim().split('\n')).toEqual(hosts.map((h) => `403 ${h}`));
  });

  it('has no route out without the proxy', async () => {
    const before = origin.seen.length;
    const direct = await sh(
      `curl -sS -m 8 --noproxy '*' http://10.0.2.2:${origin.port}/direct; echo "exit=$?"`,
    );
    expect(direct.stdout).not.toContain('"url"');
    expect(direct.stdout).toMatch(/exit=(7|28)/); // connection refused or timed out
    const tcp = await sh(
      `timeout 8 bash -c 'exec 3<>/dev/tcp/10.0.2.2/${origin.port}' && echo open || echo closed`,
    );
    expect(tcp.stdout.trim()).toBe('closed');
    // The old guestfwd address is gone too: the user network has no outbound rule at all.
    const oldRelay = await sh(`curl -sS -m 8 --noproxy '*' http://10.0.2.100:3128/; echo "exit=$?"`);
    expect(oldRelay.stdout).toMatch(/exit=(7|28)/);
    expect(origin.seen.length).toBe(before);
  });

  it("gets no DNS answer from QEMU's resolver address", async () => {
    // A query for a name under .invalid, so nothing resolvable could leave even if this failed.
    const py = [
      'import socket,struct,sys',
      's=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(5)',
      "q=struct.pack('>HHHHHH',0x1234,0x0100,1,0,0,0)+b'\\x07nothing\\x07invalid\\x00'+struct.pack('>HH',1,1)",
      "s.sendto(q,('10.0.2.3',53))",
      'try:',
      '  s.recvfrom(512); print("answered")',
      'except Exception as e: print("no answer:", type(e).__name__)',
    ].join('\n');
    const r = await sh(`python3 -c '${py.replace(/'/g, "'\\''")}'`);
    expect(r.stdout).toMatch(/^no answer/);
  });
});

/** Raw bytes to the guest's proxy port from inside the guest; the first line of each answer. */
async function rawToProxy(payloads: string[]): Promise<string[]> {
  const py = [
    'import socket,sys',
    'for p in sys.argv[1:]:',
    '  s=socket.create_connection(("127.0.0.1",3128)); s.settimeout(20)',
    '  s.sendall(p.encode().decode("unicode_escape").encode("latin1")); b=b""',
    '  while True:',
    '    d=s.recv(65536)',
    '    if not d: break',
    '    b+=d',
    '  print(b.split(b"\\r\\n")[0].decode("latin1") or "(closed)")',
  ].join('\n');
  const args = payloads.map((p) => `'${p}'`).join(' ');
  const r = await sh(`python3 -c '${py}' ${args}`);
  expect(r.exitCode, r.stderr).toBe(0);
  return r.stdout.trim().split('\n');
}

// The proxy's port in the guest is an SSH remote forward the host asked for. These try to make it
// reach something else on the host, add a forward of the guest's own, and squat it.
describe('the SSH-carried proxy port, attacked from the guest', () => {
  it('lands every connection on the proxy, whatever host port it names', async () => {
    const before = origin.seen.length;
    const sshPort = sandbox.info.sshPort;
    const proxyPort = sandbox.opts.egress?.hostPort;
    const lines = await rawToProxy([
      `CONNECT 127.0.0.1:${sshPort} HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n`,
      `CONNECT 127.0.0.1:${proxyPort} HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n`,
      `GET http://127.0.0.1:${origin.port}/loopback HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n`,
      `SSH-2.0-OpenSSH_9.2\\r\\n\\r\\n`,
    ]);
    for (const line of lines.slice(0, 3)) expect(line).toMatch(/^HTTP\/1\.1 403/);
    expect(lines[3]).toMatch(/^HTTP\/1\.1 4\d\d/); // the proxy's answer to bytes that are not HTTP
    expect(origin.seen.length).toBe(before);
  });

  it("cannot ask the guest's sshd for a listener of its own (no key gets in)", async () => {
    const r = await sh(
      "command -v ssh >/dev/null || { echo 'no ssh client'; exit 2; }; " +
        "rm -f /tmp/k /tmp/k.pub; ssh-keygen -q -t ed25519 -N '' -f /tmp/k && " +
        'ssh -i /tmp/k -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null ' +
        '-o ExitOnForwardFailure=yes -R 127.0.0.1:3129:127.0.0.1:22 -N agent@127.0.0.1 2>&1; echo "exit=$?"',
    );
    expect(r.stdout).toContain('Permission denied');
    expect(r.stdout).toMatch(/exit=255/);
  });

  it("permits no other listener, not even to the host's own key", async () => {
    const keys = await ensureSandboxKeys(join(sandbox.opts.stateDir, 'keys'));
    const conn = await connectSsh({
      connect: () => sandbox.vm.connect(22),
      username: 'agent',
      privateKey: keys.clientPrivateKey,
      hostKey: keys.hostPublicKey,
      readyTimeoutMs: 60_000,
      keepaliveIntervalMs: 15_000,
      onClose: () => undefined,
    });
    try {
      for (const [guestHost, guestPort] of [
        ['127.0.0.1', 3129],
        ['0.0.0.0', 8080],
      ] as const) {
        const bind = conn.listenInGuest({
          guestHost,
          guestPort,
          connect: () => {
            throw new CoworkError('internal', 'no connection may arrive here');
          },
          what: 'a test listener',
        });
        await expect(bind).rejects.toThrow(/would not listen/);
      }
    } finally {
      await conn.end(new CoworkError('cancelled', 'test done'));
    }
  });

  // Last: it leaves the sandbox without a usable connection, on purpose.
  it('fails closed when a guest process takes the port while the SSH connection is down', async () => {
    const squat = [
      'import socket,time',
      's=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
      'for _ in range(200):',
      '  try:',
      '    s.bind(("127.0.0.1",3128)); break',
      '  except OSError: time.sleep(0.05)',
      's.listen(8); time.sleep(600)',
    ].join('\n');
    // The session's sshd process runs as the agent: the agent can end the host's connection.
    const drop = [
      'import os',
      'for p in os.listdir("/proc"):',
      '  try:',
      '    if p.isdigit() and open("/proc/"+p+"/comm").read().strip()=="sshd" and os.stat("/proc/"+p).st_uid==os.getuid(): os.kill(int(p),9)',
      '  except Exception: pass',
    ].join('\n');
    await sh(`printf '%s\\n' '${squat}' >/tmp/squat.py && printf '%s\\n' '${drop}' >/tmp/drop.py`);
    await expect(
      sh(
        'setsid python3 /tmp/squat.py </dev/null >/dev/null 2>&1 & sleep 0.5; python3 /tmp/drop.py; sleep 5',
      ),
    ).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 1000));
    for (let i = 0; i < 2; i++) {
      const err = await sh('echo reached').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(CoworkError.is(err, 'unavailable'), String(err)).toBe(true);
      expect((err as Error).message).toMatch(/would not listen on 127\.0\.0\.1:3128 for the egress proxy/);
    }
    expect(sandbox.running).toBe(true);
  });
});
