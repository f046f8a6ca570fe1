/**
 * `npm run bench` checks its own output before it prints it: a figure that came out as n/a or
 * NaN, a row with a missing cell, or a policy/egress summary that no longer reads as the
 * README quotes it makes the run fail and says which line is wrong. (These checks used to be
 * unit tests that ran the benches only to look at the format.)
 */

const POLICY = [
  /^policy: \d+ requests \(\d+ shell, \d+ tool\), \d+ warm decisions$/,
  /^policy: warm {2}median [\d.]+ µs {2}p99 [\d.]+ µs {2}mean [\d.]+ µs {2}[\d,]+ decisions\/s/,
  /^policy: new {3}median [\d.]+ µs {2}p99 [\d.]+ µs/,
  /^policy: cold {2}median [\d.]+ µs {2}p99 [\d.]+ µs/,
];

const EGRESS = [
  /^egress proxy: per request \d+\.\d+ ms via proxy vs \d+\.\d+ ms direct .* ratio \d+\.\d+x/,
  /^egress proxy: 16 MiB download \d+ MiB\/s via proxy vs \d+ MiB\/s direct \(throughput ratio \d+\.\d+/,
  /^egress proxy: new guest connection through the SSH session \d+\.\d\d ms per request \(mean of \d+, max \d+\.\d\d ms, timed in the guest; \d+\.\d\dx (faster|slower) than a new host connection to the proxy, \d+\.\d\d ms;/,
];

const REQUIRED_RATIO_ROWS = ['warm start'];

/** Problems with the results, one line each; empty when the output is what it should be. */
export function checkBenchOutput({ header, rows, policy, egress }) {
  const problems = [];
  for (const row of rows) {
    const [name] = row;
    if (row.length !== header.length || row.some((c) => typeof c !== 'string' || c === ''))
      problems.push(`row "${name}": expected ${header.length} non-empty cells, got ${JSON.stringify(row)}`);
    // The measured columns (cowork-vm, baseline, ratio) must hold numbers; notes may say anything.
    for (const cell of row.slice(1, 4))
      if (/\bn\/a\b|NaN|Infinity|undefined/.test(String(cell)))
        problems.push(`row "${name}": a measurement is missing (${JSON.stringify(cell)})`);
  }
  // Rows whose ratio is a comparison with a baseline of the same run, said as faster or slower.
  for (const name of REQUIRED_RATIO_ROWS) {
    const row = rows.find((r) => r[0] === name);
    if (!row) problems.push(`row "${name}" is missing`);
    else if (!/^\d+\.\d{2}x (faster|slower)$/.test(row[3]))
      problems.push(`row "${name}": ratio ${JSON.stringify(row[3])} is not "N.NNx faster|slower"`);
  }
  problems.push(...matchLines('policy', policy, POLICY), ...matchLines('egress', egress, EGRESS));
  return problems;
}

function matchLines(what, lines, patterns) {
  if (lines.length !== patterns.length)
    return [
      `${what} bench: expected ${patterns.length} lines, got ${lines.length}: ${JSON.stringify(lines)}`,
    ];
  return lines.flatMap((line, i) =>
    patterns[i].test(line) ? [] : [`${what} bench line ${i + 1} does not match ${patterns[i]}: ${line}`],
  );
}
