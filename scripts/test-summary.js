// Prints the closing line CI reads — "N passed, N failed[, N skipped]" — from vitest's JSON
// report, and says why any test was skipped (only macOS-only native tests may skip on Linux).
import { existsSync, readFileSync } from 'node:fs';

const file = process.argv[2] ?? '.vitest-results.json';
if (!existsSync(file)) {
  console.log('0 passed, 1 failed');
  console.error(`no test report at ${file}: the test runner did not finish`);
  process.exit(1);
}
const r = JSON.parse(readFileSync(file, 'utf8'));
const passed = r.numPassedTests ?? 0;
// A file that failed outside any test (load error, beforeAll) counts as a failure, and its
// tests — which vitest then reports as skipped — are not counted as skipped.
const brokenSuites = (r.testResults ?? []).filter(
  (s) => s.status === 'failed' && !(s.assertionResults ?? []).some((a) => a.status === 'failed'),
);
const failedSuites = brokenSuites.length;
const notRun = brokenSuites.reduce(
  (n, s) => n + (s.assertionResults ?? []).filter((a) => a.status !== 'passed').length,
  0,
);
for (const s of brokenSuites)
  console.log(`failed outside a test: ${s.name}: ${(s.message ?? '').split('\n')[0]}`);
const failed = (r.numFailedTests ?? 0) + failedSuites;
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0) - notRun;
if (skipped > 0) {
  const names = (r.testResults ?? [])
    .filter((s) => !brokenSuites.includes(s))
    .flatMap((s) =>
      (s.assertionResults ?? [])
        .filter((a) => a.status === 'pending' || a.status === 'skipped')
        .map((a) => a.fullName),
    );
  console.log(`skipped (macOS-only native tests on ${process.platform}): ${names.join(' | ')}`);
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
