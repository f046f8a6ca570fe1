/**
 * Cut text to at most `capBytes` bytes of UTF-8 without splitting a character, so a stored
 * excerpt is always valid text and never larger than the cap the timeline records.
 * `from: 'end'` keeps the last bytes instead (console tails).
 */
export function capUtf8(
  text: string,
  capBytes: number,
  from: 'start' | 'end' = 'start',
): { text: string; truncated: boolean } {
  // Fast path: even at 3 bytes per UTF-16 unit (the worst case) it fits.
  if (text.length * 3 <= capBytes) return { text, truncated: false };
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= capBytes) return { text, truncated: false };
  const isContinuation = (i: number) => ((buf[i] ?? 0) & 0xc0) === 0x80;
  if (from === 'end') {
    let start = buf.length - capBytes;
    while (start < buf.length && isContinuation(start)) start++;
    return { text: buf.subarray(start).toString('utf8'), truncated: true };
  }
  let end = capBytes;
  // Step back over continuation bytes (10xxxxxx) so the cut lands on a character boundary.
  while (end > 0 && isContinuation(end)) end--;
  return { text: buf.subarray(0, end).toString('utf8'), truncated: true };
}

/**
 * Apply the cap to every `*Excerpt` (kept from the start) and `*Tail` (kept from the end)
 * string field of an event, recording the cap and whether anything was cut. Returns a copy.
 */
export function capExcerpts<T extends Record<string, unknown>>(event: T, capBytes: number): T {
  const keys = Object.keys(event).filter(
    (k) => (k.endsWith('Excerpt') || k.endsWith('Tail')) && typeof event[k] === 'string',
  );
  if (keys.length === 0) return event;
  const out: Record<string, unknown> = { ...event };
  let truncated = false;
  for (const k of keys) {
    const cut = capUtf8(event[k] as string, capBytes, k.endsWith('Tail') ? 'end' : 'start');
    out[k] = cut.text;
    truncated ||= cut.truncated;
  }
  out.excerptCapBytes = capBytes;
  out.excerptTruncated = truncated;
  return out as T;
}
