import { posix } from 'node:path';
import type { CommandAnalysis, Finding, SimpleCommand } from './shell-analysis.js';
import { interpreterName } from './shell-vocab.js';
import type { ShellWord } from './words.js';

/**
 * The built-in dangerous set: denied in every context, whatever the rules say. It works on the
 * analysed simple commands (quotes resolved, wrappers looked through, paths reduced to names),
 * so spellings like `'su'do`, `/usr/bin/sudo`, `env X=1 sudo` or `rm -r -f /` are all caught.
 */

const PRIVILEGE = new Set(['sudo', 'su', 'doas', 'pkexec', 'run0', 'sudoedit', 'runuser']);
const POWER = new Set(['shutdown', 'reboot', 'halt', 'poweroff', 'openrc-shutdown']);
const BLOCK_DEVICE =
  /^\/dev\/(sd|vd|hd|xvd|nvme|mmcblk|disk\/|block\/|mapper\/|dm-|md|loop|sr|root$|mem$|kmem$|port$|kmsg$)/;
/** Kernel control files: writing them reboots, crashes or reconfigures the machine. */
const KERNEL_CONTROL = /^\/(proc\/sysrq-trigger$|proc\/sys\/|sys\/)/;

/**
 * The guest kernel's view of a path: `//dev/vda`, `/dev/../dev/vda`, `/proc/self/root/dev/vda`
 * and `/proc/1/root/dev/vda` all name /dev/vda.
 */
export function canonicalSystemPath(text: string): string {
  // a relative path climbs out of the workspace (the default cwd): `../dev/vda` is /dev/vda
  if (!text.startsWith('/') && !text.startsWith('..')) return text;
  let t = posix.resolve('/workspace', text);
  for (let prev = ''; prev !== t; ) {
    prev = t;
    t = posix.normalize(t.replace(/^\/proc\/+(self|thread-self|\d+)\/+root(?=\/|$)/, '') || '/');
  }
  return t;
}

/** Does writing to this path hit a disk device or a kernel control file? */
export function isSystemWriteTarget(text: string): boolean {
  const t = canonicalSystemPath(text);
  return BLOCK_DEVICE.test(t) || KERNEL_CONTROL.test(t);
}
const DEVICE_WRITERS = new Set([
  'truncate',
  'fallocate',
  'tee',
  'cp',
  'mv',
  'shred',
  'wipefs',
  'sfdisk',
  'fdisk',
  'parted',
  'sgdisk',
  'gdisk',
  'blkdiscard',
  'mkswap',
  'cat',
  'install',
  'badblocks',
  'hdparm',
]);
const HARMLESS_DEV = new Set([
  '/dev/null',
  '/dev/zero',
  '/dev/stdout',
  '/dev/stderr',
  '/dev/tty',
  '/dev/fd/1',
  '/dev/fd/2',
]);

/** Redirections that open a file for writing: `>&FILE` and `1>&FILE` too (only `>&N` / `>&-` duplicate). */
export function isWriteRedirect(r: { op: string; target: ShellWord }): boolean {
  if (['>', '>>', '>|', '<>', '&>', '&>>'].includes(r.op)) return true;
  return r.op === '>&' && !/^([0-9]+-?|-)$/.test(r.target.text);
}

function deny(rule: string, reason: string): Finding {
  return { effect: 'deny', rule, reason };
}

/** Normalise a path word for comparison: ${HOME} → $HOME, // → /, strip trailing / and /. */
export function normTarget(text: string): string {
  let t = text.replace(/\$\{HOME\}/g, '$HOME').replace(/\/{2,}/g, '/');
  if (t.includes('..')) t = posix.normalize(t);
  for (let prev = ''; prev !== t; ) {
    prev = t;
    t = t.replace(/\/\.$/, '/').replace(/(.)\/$/, '$1');
  }
  return t;
}

/** Targets whose recursive removal (or moving) wipes the system, the home, or the workspace. */
export function isCatastrophicTarget(text: string): boolean {
  const t = normTarget(text);
  if (['*', '.', '..', './*', '../*', '.*', '/workspace/*'].includes(t)) return true;
  if (/^(~[^/]*|\$HOME)(\/\*?)?$/.test(t)) return true; // ~ ~/ ~/* ~user $HOME $HOME/*
  if (/^(\.\.\/)*\.\.(\/\*)?$/.test(t)) return true; // ../.. and ../../*
  if (/^\/[^/]*(\/\*)?$/.test(t)) return true; // /, /*, /etc, /workspace, /usr/*
  return false;
}

function shortFlags(args: ShellWord[]): { flags: Set<string>; long: Set<string>; operands: ShellWord[] } {
  const flags = new Set<string>();
  const long = new Set<string>();
  const operands: ShellWord[] = [];
  let opts = true;
  for (const w of args) {
    if (opts && w.text === '--') opts = false;
    else if (opts && w.text.startsWith('--')) long.add(w.text.split('=')[0] as string);
    else if (opts && w.text.startsWith('-') && w.text.length > 1 && !w.dynamic)
      for (const c of w.text.slice(1)) flags.add(c);
    else operands.push(w);
  }
  return { flags, long, operands };
}

/** `mv /usr x`, `mv ~ /tmp`: moving a top-level directory or the home away. */
function movesSystem(text: string): boolean {
  const t = normTarget(text);
  return /^\/[^/]+$/.test(t) || /^(~[^/]*|\$HOME)$/.test(t);
}

/** GNU getopt_long accepts any unique abbreviation: `--rec` is `--recursive`, `--no-preserve-r` is `--no-preserve-root`. */
function hasLong(long: Set<string>, full: string, minLength: number): boolean {
  for (const l of long) if (l.length >= minLength && full.startsWith(l)) return true;
  return false;
}

function checkRm(sc: SimpleCommand, out: Finding[]): void {
  const { flags, long, operands } = shortFlags(sc.argv.slice(1));
  if (hasLong(long, '--no-preserve-root', 4))
    out.push(deny('builtin:rm-root', `\`${sc.text}\` removes / (--no-preserve-root)`));
  const recursive = flags.has('r') || flags.has('R') || hasLong(long, '--recursive', 3);
  if (!recursive) return;
  for (const w of operands) {
    if (isCatastrophicTarget(w.text))
      out.push(deny('builtin:rm-rf', `\`${sc.text}\` recursively removes ${w.text}`));
    else if (w.dynamic)
      out.push({
        effect: 'ask',
        rule: 'builtin:rm-rf-dynamic',
        reason: `\`${sc.text}\` recursively removes ${w.text}, which is only known when it runs`,
      });
  }
}

/** `find / -delete`, `find ~ -exec rm …`: recursive removal by another name. */
function checkFind(sc: SimpleCommand, out: Finding[]): void {
  const args = sc.argv.slice(1);
  const firstExpr = args.findIndex((w) => /^[-(!]/.test(w.text));
  // `find . -name '*.pyc' -delete` is routine; only system, home and workspace roots count here.
  const roots = (firstExpr < 0 ? args : args.slice(0, firstExpr)).filter((w) =>
    /^[/~$]/.test(normTarget(w.text)),
  );
  const removes = args.some(
    (w, i) =>
      w.text === '-delete' ||
      ((w.text.startsWith('-exec') || w.text.startsWith('-ok')) &&
        /^(\/.*\/)?(rm|shred|unlink)$/.test(args[i + 1]?.text ?? '')),
  );
  if (removes && roots.some((w) => isCatastrophicTarget(w.text)))
    out.push(
      deny('builtin:rm-rf', `\`${sc.text}\` deletes everything under ${roots.map((w) => w.text).join(' ')}`),
    );
}

/** Inline programs (python -c, perl -e, node -e …) that spell out a privileged or wiping command. */
const INLINE_CODE_FLAG: Record<string, string> = {
  python: '-c',
  python2: '-c',
  python3: '-c',
  perl: '-e',
  ruby: '-e',
  node: '-e',
  php: '-r',
};
const INLINE_DANGER =
  /\b(sudo|doas|pkexec)\b|\brm\s+-[a-zA-Z]*[rR][a-zA-Z]*\s+(\/|~|\$HOME)(\s|\*|'|"|$)|\bmkfs\b|\b(shutdown|reboot|poweroff)\b|\bfork\b[^;]*\bwhile\b|\bwhile\b[^\n]*\bfork\b/;
function checkInlineCode(sc: SimpleCommand, out: Finding[]): void {
  const flag = INLINE_CODE_FLAG[interpreterName(sc.name)] as string;
  const args = sc.argv.slice(1);
  for (const [i, w] of args.entries()) {
    if (
      w.text !== flag &&
      !(w.text.startsWith('-') && !w.text.startsWith('--') && w.text.endsWith(flag.slice(1)))
    )
      continue;
    const code = args[i + 1];
    if (code && INLINE_DANGER.test(code.text))
      out.push(
        deny(
          'builtin:inline-code',
          `\`${sc.text}\` runs inline code that calls a privileged or destructive command`,
        ),
      );
    return;
  }
}

function checkCommand(sc: SimpleCommand, out: Finding[]): void {
  const name = sc.name;
  const args = sc.argv.slice(1);
  if ((name === 'machinectl' && args.some((w) => /^(shell|login)$/.test(w.text))) || name === 'systemd-run')
    out.push(deny(`builtin:${name}`, `\`${sc.text}\` runs a command through the service manager (as root)`));
  if (
    ['busctl', 'dbus-send', 'gdbus', 'qdbus'].includes(name) &&
    args.some((w) => /(PowerOff|Reboot|Halt|Suspend|Hibernate|KExec)\b/.test(w.text))
  )
    out.push(deny('builtin:shutdown', `\`${sc.text}\` asks the system bus to stop the machine`));
  // `hash -p /usr/bin/sudo ls` makes `ls` run sudo
  if (name === 'hash')
    for (const [i, w] of args.entries()) {
      const target =
        w.text === '-p' ? args[i + 1]?.text : w.text.startsWith('-p') ? w.text.slice(2) : undefined;
      const base = target?.replace(/.*\//, '') ?? '';
      if (PRIVILEGE.has(base) || POWER.has(base))
        out.push(deny(`builtin:${base}`, `\`${sc.text}\` makes a command name run ${base}`));
    }
  if (PRIVILEGE.has(name))
    out.push(deny(`builtin:${name}`, `\`${sc.text}\` runs ${name}: privilege escalation is never allowed`));
  if (POWER.has(name)) out.push(deny(`builtin:${name}`, `\`${sc.text}\` would ${name} the machine`));
  if ((name === 'init' && args.some((w) => /^[0-6sS]$/.test(w.text))) || name === 'telinit')
    out.push(deny('builtin:shutdown', `\`${sc.text}\` changes the runlevel (halt/reboot)`));
  if ((name === 'systemctl' || name === 'loginctl') && stopsMachine(args))
    out.push(deny('builtin:shutdown', `\`${sc.text}\` would stop the machine`));
  if (name === 'kill' || name === 'pkill' || name === 'killall5') checkKill(sc, out);
  if (/^mkfs(\..*)?$|^mke2fs$|^mkswap$|^mk(dos|ntfs|exfat|fat)fs$/.test(name))
    out.push(deny('builtin:mkfs', `\`${sc.text}\` formats a file system`));
  if (name === 'rm') checkRm(sc, out);
  if (name === 'dd')
    for (const w of args) {
      const m = /^of=(.*)$/.exec(w.text);
      const target = m ? canonicalSystemPath(m[1] as string) : '';
      if (m && (isSystemWriteTarget(target) || (target.startsWith('/dev/') && !HARMLESS_DEV.has(target))))
        out.push(deny('builtin:dd-device', `\`${sc.text}\` writes to the device ${m[1]}`));
    }
  if (DEVICE_WRITERS.has(name) && name !== 'cat')
    for (const w of args)
      if (isSystemWriteTarget(w.text))
        out.push(deny('builtin:device-write', `\`${sc.text}\` writes to the disk device ${w.text}`));
  if (name === 'chmod') {
    const { operands } = shortFlags(args);
    const mode = operands[0]?.text ?? '';
    if (/^0*777$/.test(mode) || /^(a|ugo|)[+=]rwx$/.test(mode) || /^0*[0-7]777$/.test(mode))
      out.push(deny('builtin:chmod-777', `\`${sc.text}\` makes files writable by everyone (chmod ${mode})`));
  }
  if (name === 'mv' || name === 'chown' || name === 'chmod' || name === 'chgrp') {
    const { flags, long, operands } = shortFlags(args);
    const recursiveOrMove = name === 'mv' || flags.has('R') || hasLong(long, '--recursive', 4);
    for (const w of name === 'mv' ? operands : operands.slice(1))
      if (recursiveOrMove && (/^\/\*?$/.test(normTarget(w.text)) || (name === 'mv' && movesSystem(w.text))))
        out.push(
          deny(`builtin:${name}-root`, `\`${sc.text}\` ${name === 'mv' ? 'moves' : 'changes'} ${w.text}`),
        );
  }
  // A privileged or power command hidden as an argument of something that runs its arguments.
  if (name === 'find') checkFind(sc, out);
  if (INLINE_CODE_FLAG[interpreterName(name)]) checkInlineCode(sc, out);
}

const STOP_VERBS =
  /^(poweroff|reboot|halt|kexec|suspend|hibernate|hybrid-sleep|suspend-then-hibernate|soft-reboot|rescue|emergency)$/;
const STOP_TARGETS =
  /^(poweroff|reboot|halt|kexec|rescue|emergency|shutdown|suspend|hibernate|soft-reboot)(\.target)?$/;
/** `systemctl poweroff`, `systemctl --force reboot`, `systemctl isolate reboot.target`, `systemctl start halt.target`. */
function stopsMachine(args: ShellWord[]): boolean {
  const words = args.filter((w) => !w.text.startsWith('-')).map((w) => w.text);
  const verb = words[0] ?? '';
  if (STOP_VERBS.test(verb)) return true;
  if (
    ['isolate', 'start', 'restart', 'reload-or-restart', 'try-restart', 'enable', 'set-default'].includes(
      verb,
    )
  )
    return words
      .slice(1)
      .some((t) => STOP_TARGETS.test(t) || /^(ctrl-alt-del|default|runlevel[0-6])\.target$/.test(t));
  return false;
}

/** `kill -9 -1` (every process), `kill -KILL 1` (init: the guest panics), `kill -s KILL -- -1`. */
function checkKill(sc: SimpleCommand, out: Finding[]): void {
  const args = sc.argv.slice(1);
  if (sc.name === 'killall5') {
    out.push(deny('builtin:kill-all', `\`${sc.text}\` signals every process`));
    return;
  }
  let signalSeen = false;
  for (let i = 0; i < args.length; i++) {
    const t = (args[i] as ShellWord).text.trim();
    if (t === '--') {
      signalSeen = true;
      continue;
    }
    if (!signalSeen && ['-s', '-n', '--signal'].includes(t)) {
      i++;
      signalSeen = true;
      continue;
    }
    if (!signalSeen && t.startsWith('-') && t !== '-1') {
      signalSeen = true;
      continue;
    }
    if (sc.name === 'kill' && /^-?0*1$/.test(t) && (signalSeen || t === '1'))
      out.push(deny('builtin:kill-all', `\`${sc.text}\` signals init or every process`));
    signalSeen = true;
  }
}

/** Every built-in dangerous finding for an analysed command line (structural ones come from the analyser). */
export function dangerousFindings(a: CommandAnalysis): Finding[] {
  const out: Finding[] = a.findings.filter((f) => f.rule.startsWith('builtin:'));
  for (const sc of a.commands) checkCommand(sc, out);
  for (const r of a.redirections) {
    if (!isWriteRedirect(r)) continue;
    if (isSystemWriteTarget(r.target.text))
      out.push(
        deny(
          'builtin:device-write',
          `a redirection writes to the disk device or kernel file ${r.target.text}`,
        ),
      );
  }
  // the classic spelling, in case it did not parse
  if (/(\S+)\s*\(\)\s*\{\s*\1\s*\|\s*\1\s*&\s*\}/.test(a.source))
    out.push(deny('builtin:fork-bomb', 'the command contains a fork bomb'));
  return dedupe(out);
}

export function dedupe(findings: Finding[]): Finding[] {
  const seen = new Set<string>();
  return findings.filter((f) => {
    const k = `${f.effect}|${f.rule}|${f.reason}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
