import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, BIN, cli } from '../helpers/cli.js';
import { PtySession } from '../helpers/pty.js';
import { makeTestEnv, type TestSandboxEnv } from '../helpers/sandbox.js';

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/*
 * Ctrl-C at a real terminal stops a foreground `cowork-vm start` at the FIRST press. The
 * terminal approval prompt reads the tty in raw mode, where Ctrl-C is a byte, not a signal:
 * this drives a pseudo-terminal and types that byte once.
 */
describe('Ctrl-C in a real terminal', () => {
  let t: TestSandboxEnv;
  beforeAll(() => {
    assertBuilt();
    t = makeTestEnv('ctrlc');
  });
  afterAll(() => {
    cli(['stop', '--workspace', t.workspace], t.env);
    t.cleanup();
  });

  it('one Ctrl-C stops a foreground start', async () => {
    const pty = new PtySession(
      `${shq(process.execPath)} ${shq(BIN)} start --workspace ${shq(t.workspace)}`,
      t.env,
    );
    try {
      await pty.waitFor(/Ctrl-C stops it/, 240_000); // printed only when stdin and stdout are a terminal
      pty.type('\x03');
      const end = await Promise.race([
        pty.exited,
        new Promise<'still running'>((r) => setTimeout(() => r('still running'), 90_000)),
      ]);
      expect(end, `after one Ctrl-C the terminal shows:\n${pty.output}`).not.toBe('still running');
      expect(pty.output).toContain('● sandbox stopped');
      expect(end).toEqual({ code: 0, signal: null });
      expect(cli(['status', '--workspace', t.workspace], t.env).code).toBe(3);
    } finally {
      pty.kill();
    }
  }, 400_000);
});
