import { open } from 'node:fs/promises';

/**
 * Follows the guest console log file QEMU writes (a file chardev) and hands out complete
 * lines. Polling, not fs.watch: it behaves the same on every filesystem and the cost is a
 * small read every 25 ms while a guest boots (a ready line waits half of that on average).
 */
export class ConsoleWatcher {
  private offset = 0;
  private partial = '';
  private timer: NodeJS.Timeout | undefined;
  private reading = false;

  constructor(
    private readonly path: string,
    private readonly onLine: (line: string) => void,
    private readonly intervalMs = 25,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.poll(), this.intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Reads whatever is new now (also used for a final read after the process ended). */
  async poll(): Promise<void> {
    if (this.reading) return;
    this.reading = true;
    try {
      const fh = await open(this.path, 'r').catch(() => undefined);
      if (!fh) return;
      try {
        const { size } = await fh.stat();
        if (size < this.offset) this.offset = 0; // truncated: a new QEMU run
        if (size === this.offset) return;
        const buf = Buffer.alloc(Math.min(size - this.offset, 1 << 20));
        const { bytesRead } = await fh.read(buf, 0, buf.length, this.offset);
        this.offset += bytesRead;
        this.emit(buf.subarray(0, bytesRead).toString('utf8'));
      } finally {
        await fh.close();
      }
    } finally {
      this.reading = false;
    }
  }

  private emit(text: string): void {
    const parts = (this.partial + text).split('\n');
    this.partial = parts.pop() ?? '';
    for (const raw of parts) {
      const line = raw.replace(/\r/g, '');
      if (line) this.onLine(line);
    }
  }
}

/** The last `lines` lines of the console log (from its last 64 KiB), for errors and VmExitInfo. */
export async function consoleTail(path: string, lines = 20): Promise<string> {
  const fh = await open(path, 'r').catch(() => undefined);
  if (!fh) return '';
  try {
    const { size } = await fh.stat();
    const len = Math.min(size, TAIL_BYTES);
    const buf = Buffer.alloc(len);
    const { bytesRead } = await fh.read(buf, 0, len, size - len);
    const text = buf.subarray(0, bytesRead).toString('utf8');
    return text.replace(/\r/g, '').trimEnd().split('\n').slice(-lines).join('\n');
  } finally {
    await fh.close();
  }
}

const TAIL_BYTES = 64 * 1024;
