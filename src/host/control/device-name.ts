import { CoworkError } from '../errors.js';

/** Longest device name kept, in characters (code points). */
export const MAX_DEVICE_NAME_CHARS = 64;

/**
 * Characters that can make a listed name lie about itself or about the text around it: C0/C1
 * controls (terminal escapes, newlines), every format character (bidi embeddings, overrides and
 * isolates U+202A–202E / U+2066–2069, marks, zero-width space/joiners, BOM, tag characters),
 * line and paragraph separators, lone surrogates, private-use and unassigned code points.
 */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Co}\p{Cn}]/gu;

/**
 * The name as it may be stored and shown: unsafe characters removed, whitespace runs made one
 * space, trimmed, at most MAX_DEVICE_NAME_CHARS characters. Total: safe for display of any input.
 */
export function displaySafeName(raw: string): string {
  const cleaned = raw.normalize('NFC').replace(UNSAFE, '').replace(/\s+/gu, ' ').trim();
  return [...cleaned].slice(0, MAX_DEVICE_NAME_CHARS).join('').trim();
}

/** As displaySafeName, but refuses a name with nothing printable left. */
export function sanitizeDeviceName(raw: string): string {
  const name = displaySafeName(raw);
  if (!name) {
    throw new CoworkError(
      'invalidArgument',
      'device name is empty once control and invisible formatting characters are removed; choose a printable name',
    );
  }
  return name;
}
