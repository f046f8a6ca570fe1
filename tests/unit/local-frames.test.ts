import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseServerFrame } from '../../src/host/control/local-frames.js';
import { ServerFrame } from '../../src/host/control/local-protocol.js';

const zodAccepts = (v: unknown) => ServerFrame.safeParse(v).success;
const handAccepts = (v: unknown) => parseServerFrame(v) !== undefined;

const CORPUS: unknown[] = [
  { type: 'res', id: 1, ok: true, result: { a: 1 } },
  { type: 'res', id: 1, ok: true },
  { type: 'res', id: 1, ok: true, result: null, extra: 1 },
  { type: 'res', id: 2, ok: false, error: { code: 'notFound', message: 'x' } },
  { type: 'res', id: 2, ok: false, error: { code: 'notFound' } },
  { type: 'res', id: 2, ok: false, error: { code: 'x', message: 'y', z: 1 } },
  { type: 'res', id: 2, ok: false, error: 'x' },
  { type: 'res', id: 2, ok: 'yes', result: 1 },
  { type: 'res', id: '2', ok: true, result: 1 },
  { type: 'stream', id: 3, stream: 'stdout', data: 'aGk=' },
  { type: 'stream', id: 3, stream: 'stdin', data: 'aGk=' },
  { type: 'stream', id: 3, stream: 'stderr', data: 1 },
  { type: 'stream', id: 3, stream: 'stderr' },
  { type: 'event', id: 4, event: { type: 'x' } },
  { type: 'event', id: 4 },
  { type: 'event', id: 4, event: 1, more: true },
  { type: 'other', id: 5 },
  { id: 5 },
  [],
  null,
  'res',
  42,
];

describe('the client-side server frame check', () => {
  it('agrees with the zod ServerFrame schema on a corpus', () => {
    for (const v of CORPUS) expect(handAccepts(v), JSON.stringify(v)).toBe(zodAccepts(v));
    expect(CORPUS.filter(handAccepts)).toHaveLength(4);
  });

  it('agrees with the zod schema on random frames', () => {
    const key = fc.constantFrom(
      'type',
      'id',
      'ok',
      'result',
      'error',
      'stream',
      'data',
      'event',
      'code',
      'x',
    );
    const leaf = fc.oneof(
      fc.constantFrom('res', 'stream', 'event', 'stdout', 'stderr', true, false, null, 0, 7, 'm'),
      fc.string({ maxLength: 3 }),
      fc.integer(),
    );
    const value = fc.letrec((tie) => ({
      v: fc.oneof({ depthSize: 'small' }, leaf, fc.dictionary(key, tie('v'), { maxKeys: 5 })),
    })).v;
    fc.assert(
      fc.property(value, (v) => {
        expect(handAccepts(v), JSON.stringify(v)).toBe(zodAccepts(v));
      }),
      { numRuns: 3000 },
    );
  });
});
