// Turns the tallies the fault suites append to RELIABILITY_RESULTS (one JSON line per scenario and
// invocation) into the table of docs/RELIABILITY.md. Lines of the same scenario are summed, so a
// recording may be made in parts (RELIABILITY_SEED shifts the seeds of each part).
// Usage: node scripts/reliability-table.mjs results.jsonl
import { readFileSync } from 'node:fs';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: node scripts/reliability-table.mjs <results.jsonl>\n');
  process.exit(2);
}
const scenarios = new Map();
for (const line of readFileSync(file, 'utf8').split('\n')) {
  if (!line.trim()) continue;
  const t = JSON.parse(line);
  const s = scenarios.get(t.scenario) ?? {
    runs: 0,
    completed: 0,
    failedCleanly: 0,
    unclean: 0,
    corrupted: 0,
    reuploaded: 0,
    missingBefore: 0,
    seconds: 0,
  };
  for (const key of Object.keys(s)) s[key] += t[key] ?? 0;
  scenarios.set(t.scenario, s);
}
const n = (x) => x.toLocaleString('en-US');
const rows = [
  [
    'scenario',
    'runs',
    'completed',
    'failed cleanly',
    'unclean',
    'corrupted',
    'bytes re-uploaded (= bytes missing before the re-run)',
    's per run',
  ],
  ...[...scenarios].map(([name, s]) => [
    name,
    n(s.runs),
    n(s.completed),
    n(s.failedCleanly),
    n(s.unclean),
    n(s.corrupted),
    s.reuploaded === s.missingBefore
      ? n(s.reuploaded)
      : `${n(s.reuploaded)} (missing: ${n(s.missingBefore)})`,
    s.runs ? (s.seconds / s.runs).toFixed(1) : '-',
  ]),
];
const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
const line = (r) => `| ${r.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
process.stdout.write(
  [line(rows[0]), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.slice(1).map(line)].join(
    '\n',
  ) + '\n',
);
const total = [...scenarios.values()].reduce((a, s) => a + s.seconds, 0);
process.stdout.write(
  `\n${scenarios.size} scenarios, ${n([...scenarios.values()].reduce((a, s) => a + s.runs, 0))} runs, ${Math.round(total)} s of scenario time\n`,
);
