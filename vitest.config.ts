import { defineConfig } from 'vitest/config';

// Integration tests boot real QEMU guests: they are slow under TCG and the machines have
// two cores, so files run one at a time and each may take minutes.
export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: 180_000,
    hookTimeout: 300_000,
    fileParallelism: false,
    pool: 'forks',
    reporters: ['default', 'json'],
    outputFile: { json: '.vitest-results.json' },
  },
});
