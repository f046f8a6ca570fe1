import { PID_MARKER } from './command.js';

/**
 * Collects one output stream up to `cap` bytes. Bytes past the cap are counted and dropped —
 * the channel keeps being drained so the guest command is never blocked on a full pipe, and
 * the host never buffers more than `cap`. `onChunk` sees exactly the bytes that are kept, or
 * every byte with `streamAll` (a background job: its log lives on the host, the result is an excerpt).
 */
export class CappedOutput {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  private seen = 0;

  constructor(
    private readonly cap: number,
    private readonly onChunk?: (chunk: Buffer) => void,
    private readonly streamAll = false,
  ) {}

  push(chunk: Buffer): void {
    this.seen += chunk.length;
    if (this.streamAll && chunk.length > 0) this.onChunk?.(chunk);
    const room = this.cap - this.kept;
    if (room <= 0 || chunk.length === 0) return;
    const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
    this.chunks.push(part);
    this.kept += part.length;
    if (!this.streamAll) this.onChunk?.(part);
  }

  get truncated(): boolean {
    return this.seen > this.kept;
  }

  /** Total bytes the stream produced, kept or not. */
  get totalBytes(): number {
    return this.seen;
  }

  text(): string {
    return Buffer.concat(this.chunks, this.kept).toString('utf8');
  }
}

/**
 * Finds and removes the wrapper's `COWORK-EXEC-PID <nonce> <pid>` line from the start of
 * stderr (see wrapCommand). Anything before it (login-shell noise) and after it passes
 * through. If the line does not show up within `limit` bytes the filter gives up and passes
 * everything through; `pid` stays undefined and the caller falls back to a channel signal.
 */
export class PidMarkerFilter {
  private pending: Buffer = Buffer.alloc(0);
  private readonly needle: Buffer;
  private finished = false;
  pid: number | undefined;

  constructor(
    nonce: string,
    private readonly limit = 8192,
  ) {
    this.needle = Buffer.from(`${PID_MARKER} ${nonce} `);
  }

  get done(): boolean {
    return this.finished;
  }

  /** Returns the bytes to pass on as stderr (possibly empty). */
  push(chunk: Buffer): Buffer {
    if (this.finished) return chunk;
    const buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    const at = buf.indexOf(this.needle);
    if (at >= 0) {
      const nl = buf.indexOf(0x0a, at + this.needle.length);
      if (nl >= 0) {
        const digits = buf.subarray(at + this.needle.length, nl).toString('latin1');
        if (/^[0-9]{1,10}$/.test(digits)) this.pid = Number(digits);
        this.finished = true;
        this.pending = Buffer.alloc(0);
        return Buffer.concat([buf.subarray(0, at), buf.subarray(nl + 1)]);
      }
    }
    if (buf.length > this.limit) return this.flush(buf);
    this.pending = buf;
    return Buffer.alloc(0);
  }

  /** Ends the search: returns whatever is still held back. */
  flush(extra?: Buffer): Buffer {
    const out = extra ?? this.pending;
    this.pending = Buffer.alloc(0);
    this.finished = true;
    return out;
  }
}
