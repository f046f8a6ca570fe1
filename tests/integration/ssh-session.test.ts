import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import { EXEC_TAG, killExecCommand } from '../../src/host/ssh/command.js';
import { ensureSandboxKeys, type SandboxKeys, SshGuestSession } from '../../src/host/ssh/index.js';
import { startSshd, type TestSshd } from '../helpers/sshd.js';

/**
 * GuestSession against a REAL OpenSSH sshd on loopback (see tests/helpers/sshd.ts), with the
 * sshd defaults that matter (MaxSessions 10). The lead runs the same cases against the guest.
 */

let root: string;
let keys: SandboxKeys;
let sshd: TestSshd;
let session: SshGuestSession;
/** The same server with the exec service turned off: one sshd session per command. */
let sshdSession: SshGuestSession;

async function rejection(p: Promise<unknown>): Promise<CoworkError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CoworkError);
  return err as CoworkError;
}

/** TCP connections opened through open()'s socket factory, per sshd. */
const connections = new Map<TestSshd, number>();

function open(
  s: TestSshd,
  k: SandboxKeys,
  extra: Partial<Parameters<typeof SshGuestSession.connect>[0]> = {},
) {
  return SshGuestSession.connect({
    connect: () => {
      connections.set(s, (connections.get(s) ?? 0) + 1);
      return s.connect();
    },
    username: s.user,
    privateKey: k.clientPrivateKey,
    hostKey: k.hostPublicKey,
    defaultCwd: s.workDir,
    ...extra,
  });
}

/** Processes of the login user whose command line matches the pgrep pattern. */
async function guestProcesses(pattern: string): Promise<string> {
  const r = await session.exec(`pgrep -a -u "$(id -u)" -f ${pattern} || true`);
  return r.stdout.trim();
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'cowork-ssh-test-'));
  keys = await ensureSandboxKeys(join(root, 'keys'));
  sshd = await startSshd({
    hostPrivateKey: keys.hostPrivateKey,
    authorizedKeysLine: keys.authorizedKeysLine,
  });
  session = await open(sshd, keys);
  sshdSession = await open(sshd, keys, { execService: false });
});

afterAll(async () => {
  if (process.env.SSHD_LOG) console.log(sshd?.log());
  await session?.close();
  await sshdSession?.close();
  await sshd?.stop();
  rmSync(root, { recursive: true, force: true });
});

// Every exec case runs on both paths: the exec service (the default) and one sshd session per
// command (what the session falls back to).
describe.each(['execd', 'sshd'] as const)('exec (%s)', (mode) => {
  let saved: SshGuestSession;
  beforeAll(async () => {
    saved = session;
    if (mode === 'sshd') session = sshdSession;
    await session.exec('true');
    expect(session.execPath.mode).toBe(mode);
  });
  afterAll(() => {
    session = saved;
  });

  it('returns stdout, stderr and the exit code, in the default cwd', async () => {
    const r = await session.exec('echo out; pwd; echo err >&2; exit 3');
    expect(r).toMatchObject({
      exitCode: 3,
      signal: null,
      stderr: 'err\n',
      truncated: false,
      timedOut: false,
    });
    expect(r.stdout).toBe(`out\n${sshd.workDir}\n`);
    expect(r.durationMs).toBeGreaterThanOrEqual(0);
    expect((await session.exec('true')).exitCode).toBe(0);
  });

  it('reports a signal death as exitCode null and the signal name', async () => {
    expect(await session.exec('kill -9 $$')).toMatchObject({
      exitCode: null,
      signal: 'KILL',
      timedOut: false,
    });
    expect(await session.exec('kill -TERM $$')).toMatchObject({ exitCode: null, signal: 'TERM' });
  });

  it('passes stdin (string and binary) and then EOF; without stdin the command sees EOF at once', async () => {
    expect((await session.exec('cat', { stdin: 'hello\nworld' })).stdout).toBe('hello\nworld');
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const r = await session.exec('base64 -w0', { stdin: bytes });
    expect(Buffer.from(r.stdout, 'base64').equals(bytes)).toBe(true);
    expect(await session.exec('cat; echo done')).toMatchObject({ exitCode: 0, stdout: 'done\n' });
  });

  it('runs in the given cwd, even one with spaces and quotes', async () => {
    const dir = `${sshd.workDir}/dir with 'quote' and "dq" $(x)`;
    expect((await session.exec('mkdir -p "$D"', { env: { D: dir } })).exitCode).toBe(0);
    expect((await session.exec('pwd', { cwd: dir })).stdout).toBe(`${dir}\n`);
    const missing = await session.exec('echo should-not-run', { cwd: `${sshd.workDir}/nope` });
    expect(missing.exitCode).not.toBe(0);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toMatch(/nope/);
  });

  it('delivers env values literally: quotes, $(), backticks and newlines are data', async () => {
    const canary = `${sshd.workDir}/pwned`;
    const env = {
      SQ: "it's '; touch " + canary + "; echo '",
      SUB: `$(touch ${canary})`,
      BT: `\`touch ${canary}\``,
      NL: 'line1\nline2\n; touch ' + canary,
      DQ: `"; touch ${canary}; "`,
      EMPTY: '',
    };
    const withEnv = await session.exec('printf "%s\\0" "$SQ" "$SUB" "$BT" "$NL" "$DQ" "$EMPTY"', { env });
    expect(withEnv.stdout.split('\0').slice(0, -1)).toEqual(Object.values(env));
    expect((await session.exec(`test -e '${canary}'`)).exitCode).toBe(1);
  });

  it('round-trips arbitrary env values and commands (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: 'binary', maxLength: 40 }).filter((s) => !s.includes('\0')),
        async (value) => {
          const r = await session.exec('printf %s "$V"', { env: { V: value } });
          expect(r.stdout).toBe(value);
          const echo = await session.exec(`printf %s ${"'"}${value.replaceAll("'", "'\\''")}${"'"}`);
          expect(echo.stdout).toBe(value);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('refuses env names and values a shell cannot carry safely', async () => {
    for (const name of ['A;B', '1A', 'A B', '$(id)', '']) {
      expect((await rejection(session.exec('true', { env: { [name]: 'x' } }))).code).toBe('invalidArgument');
    }
    expect((await rejection(session.exec('true', { env: { A: 'a\0b' } }))).code).toBe('invalidArgument');
    expect((await rejection(session.exec('  '))).code).toBe('invalidArgument');
  });

  it('streams output while the command still runs', async () => {
    // The command waits for a file the host creates only after it saw the first line: without
    // real streaming it would never finish (and time out).
    const go = `${sshd.workDir}/go-${Date.now()}`;
    const r = await session.exec(`echo first; while [ ! -e '${go}' ]; do sleep 0.05; done; echo second`, {
      timeoutMs: 30_000,
      onStdout: (chunk) => {
        if (chunk.toString().includes('first')) void session.writeFile(go, '');
      },
    });
    expect(r).toMatchObject({ timedOut: false, exitCode: 0, stdout: 'first\nsecond\n' });
  });

  it('kills the remote process group on timeout and resolves timedOut', async () => {
    const r = await session.exec('sleep 987654 & (sleep 987655 &); sleep 987656', { timeoutMs: 300 });
    expect(r).toMatchObject({ timedOut: true, exitCode: null, signal: 'KILL' });
    expect(await guestProcesses("'sleep 98765[456]'")).toBe('');
  });

  it('on timeout also kills children that moved to their own process group', async () => {
    // bash job control (set -m) puts each job in its own group; they stay in the session.
    const r = await session.exec('set -m; sleep 987657 & sleep 987658', { timeoutMs: 300 });
    expect(r.timedOut).toBe(true);
    expect(await guestProcesses("'sleep 98765[78]'")).toBe('');
  });

  it('on timeout also kills processes that left the session (setsid), found by their env tag', async () => {
    const r = await session.exec('setsid sleep 987660 & sleep 987661', { timeoutMs: 300 });
    expect(r.timedOut).toBe(true);
    expect(await guestProcesses("'sleep 98766[01]'")).toBe('');
  });

  it('the tag-only kill (used when the pid line never arrived) finds the tagged processes', async () => {
    const tag = 'abcdefabcdef0123';
    await session.exec(`env ${EXEC_TAG}=${tag} setsid sleep 987662 >/dev/null 2>&1 < /dev/null &`);
    expect(await guestProcesses("'sleep 98766[2]'")).not.toBe('');
    expect((await session.exec(killExecCommand({ nonce: tag }))).exitCode).toBe(0);
    expect(await guestProcesses("'sleep 98766[2]'")).toBe('');
  });

  it('cancels through an AbortSignal: rejects cancelled and kills the process', async () => {
    const ac = new AbortController();
    const p = session.exec('echo started; sleep 987659', {
      signal: ac.signal,
      onStdout: () => ac.abort(),
    });
    expect((await rejection(p)).code).toBe('cancelled');
    expect(await guestProcesses("'sleep 98765[9]'")).toBe('');
    const pre = new AbortController();
    pre.abort();
    expect((await rejection(session.exec('touch should-not-exist', { signal: pre.signal }))).code).toBe(
      'cancelled',
    );
    expect((await session.exec('test -e should-not-exist')).exitCode).toBe(1);
  });

  it('caps each stream at maxOutputBytes, keeps draining and flags truncated', async () => {
    let streamed = 0;
    const r = await session.exec(
      "head -c 10485760 /dev/zero | tr '\\0' a; head -c 300000 /dev/zero >&2; echo tail",
      {
        maxOutputBytes: 64 * 1024,
        onStdout: (c) => {
          streamed += c.length;
        },
      },
    );
    expect(r.exitCode).toBe(0); // the command ran to the end: the channel was drained
    expect(r.truncated).toBe(true);
    expect(r.stdout.length).toBe(64 * 1024);
    expect(r.stdout).toBe('a'.repeat(64 * 1024));
    expect(r.stderr.length).toBe(64 * 1024);
    expect(streamed).toBe(64 * 1024);
    const small = await session.exec('printf 12345', { maxOutputBytes: 5 });
    expect(small).toMatchObject({ stdout: '12345', truncated: false });
  });

  it('runs 20 concurrent execs on one connection despite sshd MaxSessions 10', async () => {
    const before = connections.get(sshd);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => session.exec(`sleep 0.3; echo ${i}; echo e${i} >&2`)),
    );
    results.forEach((r, i) => {
      expect(r).toMatchObject({ exitCode: 0, stdout: `${i}\n`, stderr: `e${i}\n` });
    });
    expect(connections.get(sshd)).toBe(before);
  });
});

describe('exec service', () => {
  /** The service's pid, seen from a command it started (the warm shell's parent). */
  const servicePid = async (s: SshGuestSession) => (await s.exec('echo $PPID')).stdout.trim();

  it('runs the command in its own session and process group, with the login environment', async () => {
    const r = await session.exec(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion
      'ps -o pid=,pgid=,sid= -p $$; echo "$HOME|$USER|$SHELL|${COWORK_EXEC_ID:+tagged}"',
    );
    const [pid, pgid, sid] = r.stdout.split('\n')[0]!.trim().split(/\s+/);
    expect(pgid).toBe(pid);
    expect(sid).toBe(pid);
    expect(r.stdout.split('\n')[1]).toMatch(/^\/.+\|.+\|\/.+\|tagged$/);
    const plain = await sshdSession.exec('echo "$HOME|$USER|$SHELL"');
    expect(r.stdout.split('\n')[1]).toBe(`${plain.stdout.trim()}|tagged`);
  });

  it('a command that kills the service fails with a clear error; the next command restarts it', async () => {
    const s = await open(sshd, keys);
    try {
      const first = await servicePid(s);
      const err = await rejection(s.exec('kill -KILL $PPID; sleep 5'));
      expect(err.code).toBe('unavailable');
      expect(err.message).toMatch(/exec service stopped while the command ran/);
      expect(await guestProcesses("'sleep [5]$'")).toBe('');
      const again = await s.exec('echo back');
      expect(again.stdout).toBe('back\n');
      expect(s.execPath.mode).toBe('execd');
      expect(await servicePid(s)).not.toBe(first);
    } finally {
      await s.close();
    }
  });

  it('commands that find the stopped service at once share one restart (one stop counted)', async () => {
    const s = await open(sshd, keys);
    try {
      await rejection(s.exec('kill -KILL $PPID; sleep 5'));
      const burst = await Promise.all([1, 2, 3, 4, 5].map((i) => s.exec(`echo $PPID ${i}`)));
      const services = new Set(burst.map((r) => r.stdout.split(' ')[0]));
      expect(services.size).toBe(1);
      expect(burst.map((r) => r.stdout.trim().split(' ')[1])).toEqual(['1', '2', '3', '4', '5']);
      // Two stops so far would still be under the limit of three: a second kill restarts again.
      await rejection(s.exec('kill -KILL $PPID; sleep 5'));
      await s.exec('true');
      expect(s.execPath.mode).toBe('execd');
    } finally {
      await s.close();
    }
  });

  it('after three kills on one connection, commands run on sshd sessions and say why', async () => {
    const s = await open(sshd, keys);
    try {
      for (let i = 0; i < 3; i++) await rejection(s.exec('kill -KILL $PPID; sleep 5'));
      const r = await s.exec('echo still');
      expect(r.stdout).toBe('still\n');
      expect(s.execPath).toMatchObject({ mode: 'sshd', reason: expect.stringMatching(/stopped 3 times/) });
    } finally {
      await s.close();
    }
  });

  it('forged frames written into its channel stop the service, never confuse the host', async () => {
    const s = await open(sshd, keys);
    try {
      await s.exec('true');
      // A 9-byte header announcing a 2 GiB frame, written into the service's stdout (the channel).
      const err = await rejection(
        s.exec("printf 'O\\000\\000\\000\\001\\177\\377\\377\\377' > /proc/$PPID/fd/1; sleep 5"),
      );
      expect(err.code).toBe('unavailable');
      expect(err.message).toMatch(/frame/);
      expect((await s.exec('echo fine')).stdout).toBe('fine\n');
    } finally {
      await s.close();
    }
  });

  it('without python3 on the server the session uses sshd sessions and says why', async () => {
    const s = await open(sshd, keys, { execServiceLine: 'exec python3-missing-here -c 1' });
    try {
      expect((await s.exec('echo ok')).stdout).toBe('ok\n');
      expect(s.execPath).toMatchObject({ mode: 'sshd', reason: expect.stringMatching(/did not start/) });
    } finally {
      await s.close();
    }
  });
});

describe('host key pinning', () => {
  it('refuses an sshd whose host key differs from the pinned one, before authenticating', async () => {
    const impostorKeys = await ensureSandboxKeys(join(root, 'impostor-keys'));
    // The impostor even accepts our client key: only the pin can stop us from talking to it.
    const impostor = await startSshd({
      hostPrivateKey: impostorKeys.hostPrivateKey,
      authorizedKeysLine: keys.authorizedKeysLine,
    });
    try {
      const err = await rejection(open(impostor, keys, { reconnect: { attempts: 3, initialDelayMs: 10 } }));
      expect(err.code).toBe('denied');
      expect(err.message).toMatch(/guest host key mismatch/);
      expect(err.message).toContain(keys.hostFingerprint);
      expect(err.message).toContain(impostorKeys.hostFingerprint);
      expect(impostor.log()).not.toMatch(/publickey/);
      // denied is final: exactly one connection attempt, no retries
      expect(
        impostor
          .log()
          .split('\n')
          .filter((l) => l.startsWith('Connection from')).length,
      ).toBe(1);
    } finally {
      await impostor.stop();
    }
  });

  it('refuses when the pinned key is a different key for the real server', async () => {
    const other = await ensureSandboxKeys(join(root, 'other-keys'));
    const err = await rejection(open(sshd, { ...keys, hostPublicKey: other.hostPublicKey }));
    expect(err.code).toBe('denied');
    expect(err.message).toMatch(/guest host key mismatch/);
  });

  it('refuses a client key the server does not know', async () => {
    const other = await ensureSandboxKeys(join(root, 'stranger-keys'));
    const err = await rejection(open(sshd, { ...keys, clientPrivateKey: other.clientPrivateKey }));
    expect(err.code).toBe('denied');
  });
});

describe('reconnect', () => {
  it('fails in-flight execs when the connection drops, then reconnects on the next call', async () => {
    const disconnects: CoworkError[] = [];
    const s = await open(sshd, keys, { onDisconnect: (e) => disconnects.push(e) });
    try {
      const before = connections.get(sshd) ?? 0;
      const inflight = s.exec('echo started; sleep 30', {
        onStdout: () => sshd.killConnections(),
      });
      const err = await rejection(inflight);
      expect(err.code).toBe('unavailable');
      expect(err.message).toMatch(/connection to the guest lost/);
      expect(disconnects.length).toBe(1);
      expect(s.connected).toBe(false);
      // Several callers at once share one reconnect.
      const again = await Promise.all([1, 2, 3, 4, 5].map((i) => s.exec(`echo back${i}`)));
      expect(again.map((r) => r.stdout)).toEqual([1, 2, 3, 4, 5].map((i) => `back${i}\n`));
      expect(s.connected).toBe(true);
      expect(connections.get(sshd)).toBe(before + 1);
    } finally {
      await s.close();
    }
  });

  it('gives a clear error when the server is gone for good', async () => {
    const k = await ensureSandboxKeys(join(root, 'gone-keys'));
    const d = await startSshd({ hostPrivateKey: k.hostPrivateKey, authorizedKeysLine: k.authorizedKeysLine });
    let vmAlive = true;
    let dropped!: () => void;
    const disconnected = new Promise<void>((r) => {
      dropped = r;
    });
    const s = await open(d, k, {
      reconnect: { attempts: 3, initialDelayMs: 20, maxDelayMs: 40 },
      isVmAlive: () => vmAlive,
      onDisconnect: () => dropped(),
    });
    try {
      await d.stop();
      await disconnected;
      const gone = await rejection(s.exec('true'));
      expect(gone.code).toBe('unavailable');
      expect(gone.message).toMatch(/cannot reach the guest's SSH server after 3 attempts/);
      vmAlive = false;
      const dead = await rejection(s.exec('true'));
      expect(dead.code).toBe('unavailable');
      expect(dead.message).toMatch(/VM is not running/);
    } finally {
      await s.close();
    }
  });
});

describe('files over SFTP', () => {
  it('writes and reads back text and binary files', async () => {
    const p = `${sshd.workDir}/a.txt`;
    await session.writeFile(p, 'héllo\n');
    expect((await session.readFile(p)).toString()).toBe('héllo\n');
    expect((await session.exec(`cat '${p}'`)).stdout).toBe('héllo\n');
    const big = Buffer.alloc(5 * 1024 * 1024 + 7);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    await session.writeFile(`${sshd.workDir}/big.bin`, big);
    expect((await session.readFile(`${sshd.workDir}/big.bin`)).equals(big)).toBe(true);
  });

  it('replaces files atomically: explicit mode, kept mode, no temp files left', async () => {
    const p = `${sshd.workDir}/m.sh`;
    await session.writeFile(p, '#!/bin/sh\necho one\n', { mode: 0o750 });
    expect((await session.stat(p)).mode).toBe(0o750);
    await session.writeFile(p, '#!/bin/sh\necho two\n');
    expect((await session.stat(p)).mode).toBe(0o750);
    expect((await session.exec(`'${p}'`)).stdout).toBe('two\n');
    const names = (await session.list(sshd.workDir)).map((e) => e.name);
    expect(names.filter((n) => n.includes('cowork-'))).toEqual([]);
  });

  it('stats files, directories and symlinks and lists a directory sorted', async () => {
    const d = `${sshd.workDir}/listing`;
    await session.exec(`mkdir -p '${d}/sub' && printf 1234 > '${d}/f' && ln -s f '${d}/link'`);
    expect(await session.stat(`${d}/f`)).toMatchObject({ path: `${d}/f`, type: 'file', size: 4 });
    expect((await session.stat(`${d}/sub`)).type).toBe('directory');
    expect((await session.stat(`${d}/link`)).type).toBe('symlink');
    expect((await session.stat(`${d}/f`)).mtimeMs).toBeGreaterThan(0);
    expect(await session.list(d)).toEqual([
      { name: 'f', type: 'file', size: 4 },
      { name: 'link', type: 'symlink', size: 1 },
      { name: 'sub', type: 'directory', size: expect.any(Number) },
    ]);
  });

  it('maps errors: missing, too big, directory, permission denied', async () => {
    expect((await rejection(session.readFile(`${sshd.workDir}/missing`))).code).toBe('notFound');
    expect((await rejection(session.stat(`${sshd.workDir}/missing`))).code).toBe('notFound');
    await session.writeFile(`${sshd.workDir}/ten`, '0123456789');
    expect((await rejection(session.readFile(`${sshd.workDir}/ten`, { maxBytes: 9 }))).code).toBe(
      'limitExceeded',
    );
    expect((await session.readFile(`${sshd.workDir}/ten`, { maxBytes: 10 })).toString()).toBe('0123456789');
    expect((await rejection(session.readFile(sshd.workDir))).code).toBe('invalidArgument');
    expect((await rejection(session.writeFile(sshd.workDir, 'x'))).code).toBe('invalidArgument');
    expect((await rejection(session.writeFile(`${sshd.workDir}/no/such/dir/f`, 'x'))).code).toBe('notFound');
    if (sshd.user === 'cowork-test') {
      expect((await rejection(session.readFile('/etc/shadow'))).code).toBe('denied');
      expect((await rejection(session.writeFile('/etc/cowork-should-not-exist', 'x'))).code).toBe('denied');
    }
  });
});

describe('forward', () => {
  let echo: Server;
  let echoPort: number;
  beforeAll(async () => {
    echo = createServer((sock) => sock.pipe(sock));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    echoPort = (echo.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((r) => echo.close(() => r())));

  it('opens a byte stream to a TCP port on the server side', async () => {
    const stream = await session.forward(echoPort);
    const got = new Promise<string>((resolve) => {
      let buf = '';
      stream.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('\n')) resolve(buf);
      });
    });
    stream.write('ping over ssh\n');
    expect(await got).toBe('ping over ssh\n');
    stream.end();
  });

  it('rejects for a port nobody listens on and for bad ports', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((r) => closed.close(() => r()));
    expect((await rejection(session.forward(port))).code).toBe('unavailable');
    expect((await rejection(session.forward(0))).code).toBe('invalidArgument');
  });
});

describe('close', () => {
  it('rejects commands in flight and every later call', async () => {
    const s = await open(sshd, keys);
    let closing: Promise<void> | undefined;
    const inflight = s.exec('echo started; sleep 987663', {
      onStdout: () => {
        closing ??= s.close();
      },
    });
    expect((await rejection(inflight)).code).toBe('cancelled');
    await closing;
    // closing a channel does not stop its command; close() kills what was still running
    expect(await guestProcesses("'sleep 98766[3]'")).toBe('');
    expect(s.connected).toBe(false);
    expect((await rejection(s.exec('true'))).code).toBe('invalidState');
    expect((await rejection(s.readFile('/etc/hostname'))).code).toBe('invalidState');
  });
});
