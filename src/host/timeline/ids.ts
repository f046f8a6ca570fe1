import { randomInt } from 'node:crypto';

/**
 * Short ids people type: lowercase letters and digits without the look-alikes (0/o, 1/l/i),
 * e.g. task 't-8f3k2a', approval 'a7k2'. Not secrets: they name things, they grant nothing.
 */
export const ID_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789';

export function shortId(prefix: string, length: number): string {
  let out = prefix;
  for (let i = 0; i < length; i++) out += ID_ALPHABET[randomInt(ID_ALPHABET.length)];
  return out;
}

export function newTaskId(): string {
  return shortId('t-', 6);
}

export const TASK_ID_PATTERN = /^t-[a-z0-9]{4,16}$/;
