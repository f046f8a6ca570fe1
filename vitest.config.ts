import { defineConfig } from 'vitest/config';

// Three projects, run one after another (sequence.groupOrder) so a guest never boots while
// the parallel unit files are using both cores, and so one `vitest run` still writes one JSON
// report (scripts/test-summary.js reads it).
//
// - unit: pure code, loopback sockets in-process, temp dirs of its own — files in parallel,
//   short timeouts (a unit test that needs more than a few seconds is an integration test).
// - integration: real QEMU guests, real sshd, real sockets — one file at a time (the machines
//   have two cores and TCG is slow), and each may take minutes.
// - e2e: the built binary (`bin/cowork-vm.js` over `dist/`) and the browser image — one file
//   at a time, after the integration files.
//
// A file goes to a project by where it lives, except the integration files that drive the
// built CLI (listed under e2e) and the one unit file that must not share the cores (below).
const E2E_IN_INTEGRATION = [
  'tests/integration/cache-disk-cli.test.ts',
  'tests/integration/checkpoints-cli.test.ts',
  'tests/integration/cli.test.ts',
  'tests/integration/cli-models.test.ts',
  'tests/integration/cli-startup.test.ts',
  'tests/integration/control-listen-cli.test.ts',
  'tests/integration/ctrl-c.test.ts',
  'tests/integration/image-archive-cli.test.ts',
  'tests/integration/jobs-forward-cli.test.ts',
  'tests/integration/mcp-server.test.ts',
  'tests/integration/nonroot.test.ts',
  'tests/integration/workspace-boundary.test.ts',
];

// A unit file that needs the cores to itself: the soundness test runs ~800 commands in a real
// bash jail and holds that run to a time budget, which a parallel neighbour would break. It
// runs with the integration files, one at a time.
const SERIAL_IN_UNIT = ['tests/unit/policy-soundness.test.ts'];

export default defineConfig({
  test: {
    pool: 'forks',
    reporters: ['default', 'json'],
    outputFile: { json: '.vitest-results.json' },
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['tests/unit/**/*.test.ts'],
          exclude: SERIAL_IN_UNIT,
          fileParallelism: true,
          testTimeout: 20_000,
          hookTimeout: 30_000,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['tests/integration/**/*.test.ts', ...SERIAL_IN_UNIT],
          exclude: E2E_IN_INTEGRATION,
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 300_000,
          sequence: { groupOrder: 1 },
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['tests/e2e/**/*.test.ts', ...E2E_IN_INTEGRATION],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 300_000,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
