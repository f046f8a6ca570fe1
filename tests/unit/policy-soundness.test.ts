import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPolicyEngine, type PolicyContextName } from '../../src/host/policy/index.js';
import { workspaceRelativePath, writeTargets } from '../../src/host/policy/write-targets.js';
import { ProtectedPaths } from '../../src/host/workspace/index.js';
import {
  ATTACKS,
  BENIGN,
  BENIGN_WITHOUT_READ_RULES,
  DENY_CORPUS,
  PROBES,
  SOUNDNESS_CONFIG,
} from '../fixtures/shell-corpus/corpus.js';

/**
 * Soundness of auto-approval, proven against bash itself. Every corpus command runs in a real
 * bash inside a jail where nothing real runs: a fresh mount, PID, network, UTS and IPC namespace,
 * a tmpfs root holding only bash (+ its libraries) and a logging stub under every program name,
 * an unprivileged uid with a process limit and a hard timeout. For every command the analyser
 * ALLOWS, each program bash actually executed must itself be allowed as a literal command, and
 * every file it wrote must be a literal workspace target the analysis saw and that is not protected.
 */
const engine = createPolicyEngine(SOUNDNESS_CONFIG);
const protectedPaths = new ProtectedPaths();
const decide = (command: string, context: PolicyContextName) =>
  engine.evaluate({ kind: 'shell', command }, { context, workspace: '/nonexistent-workspace' });
/** Recursive readers ask while a Read rule could match inside the directory; without one they are allowed. */
const noRead = createPolicyEngine({ policy: { allow: SOUNDNESS_CONFIG.policy.allow } });
const decideNoRead = (command: string, context: PolicyContextName) =>
  noRead.evaluate({ kind: 'shell', command }, { context, workspace: '/nonexistent-workspace' });

describe('soundness corpus (analyser only)', () => {
  it('has enough cases of every class', () => {
    expect(ATTACKS.length).toBeGreaterThanOrEqual(300);
    expect(BENIGN.length).toBeGreaterThanOrEqual(100);
    const classes = new Set(ATTACKS.map((a) => a.cls));
    for (const c of [
      'redirect-form',
      'eval-in-data',
      'heredoc-split',
      'runs-nothing',
      'dynamic-after-prefix',
      'trusted-option',
      'wrapper-getopt',
      'wrapper-path',
      'fork-bomb',
      'read-rule-text',
      'builtin-deny',
    ])
      expect(classes.has(c), c).toBe(true);
  });

  it('no attack is allowed in the agent or gateway context', () => {
    const allowed = ATTACKS.filter(
      (a) => decide(a.command, 'agent').effect === 'allow' || decide(a.command, 'gateway').effect === 'allow',
    ).map((a) => `[${a.cls}] ${JSON.stringify(a.command)}`);
    expect(allowed).toEqual([]);
  });

  it('every benign command is allowed in the agent and gateway contexts, and locally', () => {
    const notAllowed = [...BENIGN, ...BENIGN_WITHOUT_READ_RULES].flatMap((c) =>
      (['agent', 'gateway', 'local'] as const)
        .map((ctx) => ({ ctx, d: BENIGN.includes(c) ? decide(c, ctx) : decideNoRead(c, ctx) }))
        .filter(({ d }) => d.effect !== 'allow')
        .map(({ ctx, d }) => `${ctx}: ${JSON.stringify(c)} → ${d.effect}: ${d.reasons.join('; ')}`),
    );
    expect(notAllowed).toEqual([]);
  });

  it('every built-in deny is denied in every context', () => {
    const missed = DENY_CORPUS.flatMap((c) =>
      (['agent', 'gateway', 'local'] as const)
        .filter((ctx) => decide(c, ctx).effect !== 'deny')
        .map((ctx) => `${ctx}: ${JSON.stringify(c)} → ${decide(c, ctx).effect}`),
    );
    expect(missed).toEqual([]);
  });
});

// ---------------------------------------------------------------- the jail

const STUB = `#!/bin/bash
{ printf '%s\\x1f' "$0" "$@"; printf '\\x1e'; } >> /log/exec
exit 0
`;
/** The driver runs as root inside the namespaces; it never runs a corpus command outside the chroot. */
const DRIVER = `set -u
T="$1"; R="$T/root"
mount -t tmpfs -o size=64m tmpfs "$R" || { echo "JAIL: cannot mount tmpfs" >&2; exit 90; }
mkdir -p "$R"/usr/bin "$R"/usr/lib "$R"/usr/lib64 "$R"/.h "$R"/log "$R"/proc "$R"/dev "$R"/tmp "$R"/workspace
ln -s usr/bin "$R/bin"; ln -s usr/bin "$R/sbin"; ln -s bin "$R/usr/sbin"; mkdir -p "$R/usr/local"; ln -s ../bin "$R/usr/local/bin"
ln -s usr/lib "$R/lib"; ln -s usr/lib64 "$R/lib64"
for b in /bin/bash /usr/bin/setpriv; do
  for l in $(ldd "$b" | grep -o '/[^ ]*'); do cp -L --parents "$l" "$R" || exit 91; done
done
cp -L /bin/bash "$R/.h/bash" && cp -L /usr/bin/setpriv "$R/.h/setpriv" || exit 92
cp "$T/stub" "$R/.h/stub"; chmod 755 "$R/.h/stub"
while read -r n; do [ -n "$n" ] && ln "$R/.h/stub" "$R/usr/bin/$n" 2>/dev/null; done < "$T/names"
rm -f "$R/usr/bin/bash"; ln "$R/.h/bash" "$R/usr/bin/bash"
printf 'cd /workspace || exit 99\\nexport PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/home/agent\\nexec /bin/bash -c "$(< /cmd)"\\n' > "$R/.h/run"
mknod -m 666 "$R/dev/null" c 1 3; mknod -m 666 "$R/dev/zero" c 1 5
ln -s /proc/self/fd "$R/dev/fd"; ln -s /proc/self/fd/0 "$R/dev/stdin"; ln -s /proc/self/fd/1 "$R/dev/stdout"; ln -s /proc/self/fd/2 "$R/dev/stderr"
mount -t proc proc "$R/proc" || { echo "JAIL: cannot mount proc" >&2; exit 93; }
chmod 1777 "$R/tmp"; chown 65534:65534 "$R/log"
ulimit -u 48
list() { find "$R/workspace" "$R/tmp" -printf '%p\\t%i\\t%s\\t%T@\\t%y\\n' | sed "s#^$R##" | sort; }
drop() { chroot "$R" /.h/setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all "$@"; }
for f in "$T"/cmds/*; do
  i="\${f##*/}"
  rm -rf "$R/workspace" "$R"/tmp/* "$R"/tmp/.[!.]* 2>/dev/null
  cp -a "$T/template" "$R/workspace"; chown -R 65534:65534 "$R/workspace"
  : > "$R/log/exec"; chown 65534:65534 "$R/log/exec"; cp "$f" "$R/cmd"; chmod 644 "$R/cmd"
  list > "$T/out/$i.before"
  timeout -s KILL "$(cat "$T/limit/$i")" chroot "$R" /.h/setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all /.h/bash /.h/run </dev/null >/dev/null 2>&1
  # leftovers (background jobs, fork bombs) are ours: this PID namespace holds nothing else
  if pgrep -U 65534 >/dev/null; then drop /.h/bash -c 'kill -9 -1' 2>/dev/null; drop /.h/bash -c 'kill -9 -1' 2>/dev/null; fi
  list > "$T/out/$i.after"
  cp "$R/log/exec" "$T/out/$i.exec"
done
echo JAIL-DONE
`;

interface Run {
  command: string;
  execs: string[][];
  changed: string[];
}

function programNames(commands: string[]): string[] {
  const names = new Set<string>();
  for (const c of commands) for (const m of c.matchAll(/[A-Za-z_][A-Za-z0-9_.+-]*/g)) names.add(m[0]);
  names.delete('bash');
  return [...names];
}

function buildTemplate(dir: string, commands: string[]): void {
  const files: Record<string, string> = {
    'README.md': 'hello x\nreboot\n',
    'docs/x.md': 'sudo x\n',
    'src/a.py': 'print(1)\n',
    'src/b.ts': 'export {}\n',
    'tests/test_a.py': 'def test_a(): pass\n',
    '.env': 'KEY=secret\n',
    'files.txt': 'b,2\na,1\n',
    x: 'x\n',
    '.git/HEAD': 'ref: refs/heads/main\n',
    '.git/config': '[core]\n',
    '.git/hooks/.keep': '',
    'sub/.git/config': '[core]\n',
  };
  for (const [p, body] of Object.entries(files)) {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), body);
  }
  // the agent's own programs named like wrappers and tools (`./env ls`): stubs in the workspace
  for (const c of commands)
    for (const m of c.matchAll(/(?:^|[\s;&|])\.\/([A-Za-z0-9_.-]+)/g)) {
      const p = join(dir, m[1] as string);
      if (existsSync(p)) continue;
      writeFileSync(p, STUB);
      chmodSync(p, 0o755);
    }
}

function parseList(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n').filter(Boolean)) {
    const [path, ...rest] = line.split('\t');
    m.set(path as string, rest.join('\t'));
  }
  return m;
}

function runInJail(commands: string[]): Run[] {
  const t = mkdtempSync(join(tmpdir(), 'cowork-soundness-'));
  try {
    for (const d of ['root', 'cmds', 'out', 'limit', 'template']) mkdirSync(join(t, d));
    writeFileSync(join(t, 'stub'), STUB);
    writeFileSync(join(t, 'names'), programNames(commands).join('\n'));
    buildTemplate(join(t, 'template'), commands);
    commands.forEach((c, i) => {
      const id = String(i).padStart(4, '0');
      writeFileSync(join(t, 'cmds', id), c);
      // fork bombs only need to prove they are contained
      writeFileSync(join(t, 'limit', id), /\(\)\s*\{/.test(c) ? '0.4' : '1');
    });
    writeFileSync(join(t, 'driver.sh'), DRIVER);
    const r = spawnSync(
      'unshare',
      [
        '--mount',
        '--pid',
        '--fork',
        '--net',
        '--uts',
        '--ipc',
        '--mount-proc',
        '--propagation',
        'private',
        'bash',
        join(t, 'driver.sh'),
        t,
      ],
      { encoding: 'utf8', timeout: 170_000 },
    );
    if (r.error || r.status !== 0 || !r.stdout.includes('JAIL-DONE'))
      throw new Error(
        `the soundness jail could not be set up or did not finish (needs root, unshare, setpriv, chroot; Linux): status ${r.status} ${r.error?.message ?? ''}\n${r.stderr.slice(-2000)}`,
      );
    return commands.map((command, i) => {
      const id = String(i).padStart(4, '0');
      const out = (s: string) => readFileSync(join(t, 'out', `${id}.${s}`), 'utf8');
      const execs = out('exec')
        .split('\x1e')
        .filter(Boolean)
        .map((rec) => rec.split('\x1f').slice(0, -1));
      const before = parseList(out('before'));
      const after = parseList(out('after'));
      const changed = [...new Set([...before.keys(), ...after.keys()])].filter(
        (p) =>
          before.get(p) !== after.get(p) &&
          !(before.get(p)?.endsWith('\td') && after.get(p)?.endsWith('\td')),
      );
      return { command, execs, changed };
    });
  } finally {
    spawnSync('umount', ['-l', join(t, 'root')]);
    rmSync(t, { recursive: true, force: true });
  }
}

const quote = (w: string) => `'${w.replace(/'/g, `'\\''`)}'`;

/** What an executed program is, as a command line the policy can judge. */
function asCommand(argv: string[]): string {
  const [path = '', ...args] = argv;
  const name = /^\/(usr\/)?(local\/)?s?bin\/[^/]+$/.test(path) ? path.replace(/.*\//, '') : path;
  return [name, ...args].map(quote).join(' ');
}

describe('differential soundness against bash', () => {
  const corpus = [
    ...new Set([...ATTACKS.map((a) => a.command), ...BENIGN, ...BENIGN_WITHOUT_READ_RULES, ...PROBES]),
  ];
  let runs: Run[] = [];
  let seconds = 0;
  beforeAll(() => {
    const t0 = Date.now();
    runs = runInJail(['ls -la', 'echo x > out.txt', ...corpus]);
    seconds = (Date.now() - t0) / 1000;
    console.log(`soundness jail: ${corpus.length + 2} commands in ${seconds.toFixed(1)} s`);
  }, 180_000);
  afterAll(() => {
    runs = [];
  });

  it('the jail works: stubs log what bash runs, writes are seen', () => {
    expect(runs[0]?.execs.map((e) => asCommand(e))).toEqual(["'ls' '-la'"]);
    expect(runs[1]?.changed).toEqual(['/workspace/out.txt']);
    expect(runs.length).toBe(corpus.length + 2);
  });

  it('for every allowed command, what bash executed and wrote was seen and allowed', () => {
    const failures: string[] = [];
    for (const run of runs.slice(2)) {
      const d = decide(run.command, 'agent');
      if (d.effect !== 'allow') continue;
      for (const e of run.execs) {
        const c = asCommand(e);
        if (decide(c, 'agent').effect !== 'allow')
          failures.push(`${JSON.stringify(run.command)} was allowed but bash ran ${c}`);
      }
      const a = engine.analyze(run.command);
      const targets = new Set(
        writeTargets(a)
          .filter((t) => !t.word.dynamic && !t.word.glob)
          .map((t) => workspaceRelativePath(t.word.text))
          .filter((r): r is string => r !== undefined),
      );
      for (const p of run.changed) {
        const rel = p.startsWith('/workspace/') ? p.slice('/workspace/'.length) : undefined;
        if (rel === undefined || !targets.has(rel) || protectedPaths.reason(rel) !== null)
          failures.push(`${JSON.stringify(run.command)} was allowed but bash wrote ${p}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('the attacks are real: in bash, most of them run or write what no rule allows', () => {
    const real = runs.slice(2).filter((run) => {
      const a = ATTACKS.find((x) => x.command === run.command);
      if (!a) return false;
      const ran = run.execs.some((e) => decide(asCommand(e), 'agent').effect !== 'allow');
      return ran || run.changed.length > 0;
    }).length;
    console.log(`attacks that ran or wrote something unapproved in bash: ${real} of ${ATTACKS.length}`);
    expect(real).toBeGreaterThanOrEqual(400);
  });

  it('reports what the analyser missed in commands it did not allow (information for deny rules)', () => {
    const missed: string[] = [];
    for (const run of runs.slice(2)) {
      const seen = new Set(engine.analyze(run.command).commands.flatMap((c) => [c.name, ...c.wrappers]));
      for (const e of run.execs) {
        const name = (e[0] ?? '').replace(/.*\//, '');
        if (!seen.has(name)) missed.push(`${JSON.stringify(run.command)} ran ${name}`);
      }
    }
    console.log(
      `executions the analysis did not list (all asked or denied): ${missed.length}\n${missed.slice(0, 20).join('\n')}`,
    );
    expect(Array.isArray(missed)).toBe(true);
  });

  it('stays within the time budget', () => {
    expect(seconds).toBeLessThan(90);
  });
});
