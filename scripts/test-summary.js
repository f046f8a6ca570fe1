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
// Files that failed to load count as failures too.
const failedSuites = (r.testResults ?? []).filter((s) => s.status === 'failed' && (s.assertionResults ?? []).length === 0).length;
const failed = (r.numFailedTests ?? 0) + failedSuites;
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
if (skipped > 0) {
  const names = (r.testResults ?? []).flatMap((s) =>
    (s.assertionResults ?? []).filter((a) => a.status === 'pending' || a.status === 'skipped').map((a) => a.fullName),
  );
  console.log(`skipped (macOS-only native tests on ${process.platform}): ${names.join(' | ')}`);
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
