import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import {
  EXEC_TAG,
  killExecCommand,
  PID_MARKER,
  shellQuote,
  wrapCommand,
} from '../../src/host/ssh/command.js';

const nonce = '0123456789abcdef';

/** Undo POSIX single-quoting of one word built by shellQuote (the only construct it emits). */
function unquote(word: string): string {
  expect(word.startsWith("'") && word.endsWith("'")).toBe(true);
  return word.slice(1, -1).replaceAll("'\\''", "'");
}

describe('shellQuote', () => {
  it('wraps in single quotes and escapes embedded single quotes', () => {
    expect(shellQuote('plain')).toBe("'plain'");
    expect(shellQuote('')).toBe("''");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(shellQuote('$(id) `id` "x" \\ \n')).toBe('\'$(id) `id` "x" \\ \n\'');
  });

  it('never leaves an unquoted character outside the escape sequence (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary' }).filter((s) => !s.includes('\0')),
        (s) => {
          const q = shellQuote(s);
          expect(unquote(q)).toBe(s);
          // Outside quotes only the \' escape may appear: strip quoted runs and check.
          expect(q.replace(/'[^']*'/g, '')).toMatch(/^(\\')*$/);
        },
      ),
    );
  });

  it('refuses NUL bytes', () => {
    const err = (() => {
      try {
        shellQuote('a\0b', 'cwd');
      } catch (e) {
        return e;
      }
    })();
    expect(CoworkError.is(err, 'invalidArgument')).toBe(true);
    expect((err as Error).message).toMatch(/cwd contains a NUL byte/);
  });
});

describe('wrapCommand', () => {
  it('prints the pid marker first, then cd, export and exec of the login shell', () => {
    const line = wrapCommand('echo hi', { cwd: '/workspace', env: { A: '1', B_2: "x'y" }, nonce });
    expect(line).toBe(
      `printf '${PID_MARKER} %s %s\\n' ${nonce} "$$" >&2; cowork_shell="\${SHELL:-/bin/sh}"; ` +
        `cd -- '/workspace' && export A='1' B_2='x'\\''y' ${EXEC_TAG}=${nonce} && exec "$cowork_shell" -c 'echo hi'`,
    );
  });

  it('exports only the tag without env, puts the tag last, and honours an explicit shell', () => {
    const line = wrapCommand("echo 'q'", { cwd: '/w', nonce, shell: '/bin/bash' });
    expect(line).toContain(`cowork_shell='/bin/bash'`);
    expect(line).toContain(`&& export ${EXEC_TAG}=${nonce} &&`);
    const override = wrapCommand('true', { cwd: '/w', nonce, env: { [EXEC_TAG]: 'mine' } });
    expect(override).toContain(`export ${EXEC_TAG}='mine' ${EXEC_TAG}=${nonce} &&`);
    expect(line.endsWith(`exec "$cowork_shell" -c 'echo '\\''q'\\'''`)).toBe(true);
  });

  it('rejects invalid env names, empty cwd and malformed nonces', () => {
    for (const name of ['', '1A', 'A-B', 'A B', 'A;B', '$X', 'é']) {
      expect(() => wrapCommand('true', { cwd: '/w', env: { [name]: 'v' }, nonce })).toThrow(/not valid/);
    }
    expect(() => wrapCommand('true', { cwd: '', nonce })).toThrow(CoworkError);
    expect(() => wrapCommand('true', { cwd: '/w', nonce: 'x; rm -rf /' })).toThrow(CoworkError);
    expect(() => wrapCommand('a\0b', { cwd: '/w', nonce })).toThrow(/command contains a NUL/);
  });
});

describe('killExecCommand', () => {
  const tagged = (sig: string) =>
    `for f in $(grep -lzxF '${EXEC_TAG}=${nonce}' /proc/[0-9]*/environ 2>/dev/null); do ` +
    `p=\${f#/proc/}; kill -${sig} "\${p%/environ}" 2>/dev/null; done`;

  it('kills the group, the pid and the session, then tagged processes twice', () => {
    expect(killExecCommand({ pid: 1234, nonce })).toBe(
      'kill -KILL -- -1234 2>/dev/null; kill -KILL 1234 2>/dev/null; pkill -KILL -s 1234 2>/dev/null; ' +
        `${tagged('KILL')}; ${tagged('KILL')}; true`,
    );
    expect(killExecCommand({ pid: 77, nonce }, 'TERM')).toContain('kill -TERM -- -77');
  });

  it('without a pid kills only tagged processes', () => {
    expect(killExecCommand({ nonce })).toBe(`${tagged('KILL')}; ${tagged('KILL')}; true`);
  });

  it('refuses pids 0, 1, negatives, fractions, odd nonces and odd signal names', () => {
    for (const pid of [0, 1, -5, 2.5, Number.NaN])
      expect(() => killExecCommand({ pid, nonce })).toThrow(CoworkError);
    expect(() => killExecCommand({ nonce: "x'; reboot; '" })).toThrow(CoworkError);
    expect(() => killExecCommand({ pid: 100, nonce }, 'KILL; reboot')).toThrow(CoworkError);
  });
});
