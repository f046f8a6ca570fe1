/**
 * Output shown to the model is capped: a 5 MB build log would burn the token budget in one
 * call. Keeps the head and the tail (errors are usually at the end) and says what was cut.
 */
export const MODEL_OUTPUT_CHARS = 30_000;

export function abridge(text: string, maxChars: number = MODEL_OUTPUT_CHARS): string {
  if (text.length <= maxChars) return text;
  const head = Math.floor(maxChars * 0.4);
  const tail = maxChars - head;
  const cut = text.length - head - tail;
  return `${text.slice(0, head)}\n[… ${cut} characters omitted …]\n${text.slice(text.length - tail)}`;
}

export function bytesOfMB(mb: number): number {
  return Math.floor(mb * 1024 * 1024);
}
