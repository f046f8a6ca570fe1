import { describe, expect, it } from 'vitest';
import { CoworkError } from '../../src/host/errors.js';
import { ChannelSlots } from '../../src/host/ssh/channel-slots.js';
import { PID_MARKER } from '../../src/host/ssh/command.js';
import { CappedOutput, PidMarkerFilter } from '../../src/host/ssh/output.js';
import { fileType } from '../../src/host/ssh/sftp.js';

const nonce = 'feedfacecafebeef';
const b = (s: string) => Buffer.from(s);

describe('CappedOutput', () => {
  it('keeps bytes up to the cap, counts the rest and streams only what it keeps', () => {
    const seen: string[] = [];
    const out = new CappedOutput(5, (c) => seen.push(c.toString()));
    out.push(b('abc'));
    out.push(b('defg'));
    out.push(b('hij'));
    expect(out.text()).toBe('abcde');
    expect(seen).toEqual(['abc', 'de']);
    expect(out.truncated).toBe(true);
    expect(out.totalBytes).toBe(10);
  });

  it('is not truncated when output exactly fills the cap, and a zero cap keeps nothing', () => {
    const exact = new CappedOutput(3);
    exact.push(b('abc'));
    expect(exact.truncated).toBe(false);
    const none = new CappedOutput(0);
    none.push(b('x'));
    expect([none.text(), none.truncated]).toEqual(['', true]);
  });
});

describe('PidMarkerFilter', () => {
  const line = `${PID_MARKER} ${nonce} 4242\n`;

  it('extracts the pid and removes only the marker line', () => {
    const f = new PidMarkerFilter(nonce);
    expect(f.push(b(`${line}real error\n`)).toString()).toBe('real error\n');
    expect(f.pid).toBe(4242);
    expect(f.done).toBe(true);
    expect(f.push(b(line)).toString()).toBe(line); // a second marker is the command's own output
  });

  it('handles a marker split across chunks and login-shell noise before it', () => {
    const f = new PidMarkerFilter(nonce);
    const whole = `motd noise\n${line}after`;
    let out = '';
    for (const ch of whole) out += f.push(b(ch)).toString();
    expect(out).toBe('motd noise\nafter');
    expect(f.pid).toBe(4242);
  });

  it('ignores a marker with another nonce (a command cannot forge the pid)', () => {
    const f = new PidMarkerFilter(nonce);
    const forged = `${PID_MARKER} 0000000000000000 1\n`;
    expect(f.push(b(forged)).toString()).toBe('');
    expect(f.flush().toString()).toBe(forged);
    expect(f.pid).toBeUndefined();
  });

  it('gives up after the limit and passes everything through', () => {
    const f = new PidMarkerFilter(nonce, 16);
    expect(f.push(b('0123456789')).length).toBe(0);
    expect(f.push(b('abcdefghij')).toString()).toBe('0123456789abcdefghij');
    expect(f.done).toBe(true);
    expect(f.pid).toBeUndefined();
  });

  it('drops a non-numeric pid', () => {
    const f = new PidMarkerFilter(nonce);
    f.push(b(`${PID_MARKER} ${nonce} 12;rm\n`));
    expect(f.pid).toBeUndefined();
  });
});

describe('ChannelSlots', () => {
  it('grants up to size at once and hands freed slots to waiters in order', async () => {
    const slots = new ChannelSlots(2);
    const r1 = await slots.acquire();
    const r2 = await slots.acquire();
    expect(slots.available).toBe(0);
    const order: number[] = [];
    const w3 = slots.acquire().then((r) => {
      order.push(3);
      return r;
    });
    const w4 = slots.acquire().then((r) => {
      order.push(4);
      return r;
    });
    expect(slots.waiting).toBe(2);
    r1();
    r1(); // double release is ignored
    const r3 = await w3;
    expect(slots.waiting).toBe(1);
    r2();
    const r4 = await w4;
    expect(order).toEqual([3, 4]);
    r3();
    r4();
    expect(slots.available).toBe(2);
  });

  it('an abort while waiting rejects cancelled and gives up the place in line', async () => {
    const slots = new ChannelSlots(1);
    const r1 = await slots.acquire();
    const ac = new AbortController();
    const waiting = slots.acquire(ac.signal);
    ac.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'cancelled' });
    expect(slots.waiting).toBe(0);
    r1();
    expect(slots.available).toBe(1);
    const pre = new AbortController();
    pre.abort();
    await expect(slots.acquire(pre.signal)).rejects.toMatchObject({ code: 'cancelled' });
  });

  it('close rejects waiters and later acquires with the given error', async () => {
    const slots = new ChannelSlots(1);
    await slots.acquire();
    const waiting = slots.acquire();
    const err = new CoworkError('invalidState', 'closed');
    slots.close(err);
    await expect(waiting).rejects.toBe(err);
    await expect(slots.acquire()).rejects.toBe(err);
  });

  it('refuses a size below 1', () => {
    expect(() => new ChannelSlots(0)).toThrow(CoworkError);
  });
});

describe('fileType', () => {
  it('maps st_mode type bits', () => {
    expect(fileType(0o100644)).toBe('file');
    expect(fileType(0o040755)).toBe('directory');
    expect(fileType(0o120777)).toBe('symlink');
    expect(fileType(0o010644)).toBe('other');
  });
});
