import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseBootSteps } from '../../src/host/vm/boot-steps.js';
import { ConsoleWatcher, consoleTail } from '../../src/host/vm/console-watch.js';

let dir: string;
let log: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'console-watch-'));
  log = join(dir, 'console.log');
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('ConsoleWatcher', () => {
  it('emits complete lines only, strips CR, skips blank lines, and waits for a file that does not exist yet', async () => {
    const lines: string[] = [];
    const w = new ConsoleWatcher(log, (l) => lines.push(l));
    await w.poll();
    expect(lines).toEqual([]);
    writeFileSync(log, 'first\r\nsec');
    await w.poll();
    expect(lines).toEqual(['first']);
    appendFileSync(log, 'ond\r\n\r\nCOWORK-READY {"share":"9p"}\n');
    await w.poll();
    expect(lines).toEqual(['first', 'second', 'COWORK-READY {"share":"9p"}']);
  });

  it('starts over when the file is truncated (a new QEMU run)', async () => {
    const lines: string[] = [];
    const w = new ConsoleWatcher(log, (l) => lines.push(l));
    writeFileSync(log, 'old boot line that is long\n');
    await w.poll();
    writeFileSync(log, 'new\n');
    await w.poll();
    expect(lines).toEqual(['old boot line that is long', 'new']);
  });

  it('polls on its own once started, until stopped', async () => {
    const seen: string[] = [];
    const w = new ConsoleWatcher(log, (l) => seen.push(l), 10);
    w.start();
    writeFileSync(log, 'hello\n');
    await expect.poll(() => seen).toEqual(['hello']);
    w.stop();
    appendFileSync(log, 'after stop\n');
    await new Promise((r) => setTimeout(r, 50));
    expect(seen).toEqual(['hello']);
  });
});

describe('consoleTail', () => {
  it('returns the last lines of a large log without CRs', async () => {
    const body = Array.from({ length: 5000 }, (_, i) => `line ${i}\r`).join('\n');
    writeFileSync(log, `${body}\n`);
    expect(await consoleTail(log, 3)).toBe('line 4997\nline 4998\nline 4999');
  });

  it('is empty for a missing file', async () => {
    expect(await consoleTail(join(dir, 'missing.log'))).toBe('');
  });
});

describe('parseBootSteps', () => {
  it('reads the COWORK-TIME line in order and ignores every other line', () => {
    const steps = parseBootSteps('COWORK-TIME kernel=0.91 modules=1.62 init=1.8 listening=3.40');
    expect(steps).toEqual({ kernel: 0.91, modules: 1.62, init: 1.8, listening: 3.4 });
    expect(Object.keys(steps ?? {})).toEqual(['kernel', 'modules', 'init', 'listening']);
    expect(parseBootSteps('COWORK-READY {"share":"9p"}')).toBeUndefined();
    expect(parseBootSteps('cowork-init: COWORK-TIME')).toBeUndefined();
  });

  it('refuses a line the guest garbled rather than reading half of it', () => {
    expect(parseBootSteps('COWORK-TIME kernel=0.91 modules=oops')).toBeUndefined();
    expect(parseBootSteps('COWORK-TIME __proto__=1')).toBeUndefined();
    expect(parseBootSteps('COWORK-TIME kernel=1e99')).toBeUndefined();
    expect(parseBootSteps(`COWORK-TIME ${'x'.repeat(33)}=1`)).toBeUndefined();
    expect(
      parseBootSteps(`COWORK-TIME ${Array.from({ length: 65 }, () => 's=1').join(' ')}`),
    ).toBeUndefined();
    expect(parseBootSteps('COWORK-TIME kernel=12345678')).toBeUndefined();
  });
});
