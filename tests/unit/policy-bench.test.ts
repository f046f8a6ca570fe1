import { expect, it } from 'vitest';
import { benchPolicy } from '../../src/host/policy/bench.js';

it('benchPolicy reports warm and cold figures', async () => {
  const { lines } = await benchPolicy({ rounds: Number(process.env.H4_ROUNDS ?? 5) });
  console.log(lines.join('\n'));
  expect(lines).toHaveLength(4);
  expect(lines[1]).toMatch(/warm {2}median [\d.]+ µs/);
  expect(lines[3]).toMatch(/cold {2}median [\d.]+ µs/);
});
