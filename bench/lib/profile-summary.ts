// Summarizes a V8 .cpuprofile (node --cpu-prof): self time per function and per source area, so the
// profile section of docs/BENCHMARKS.md can be regenerated:  npx tsx bench/lib/profile-summary.ts FILE.cpuprofile
import { readFile } from 'node:fs/promises';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
const file = process.argv[2];
if (!file) throw new Error('usage: profile-summary FILE.cpuprofile');
const profile = JSON.parse(await readFile(file, 'utf8')) as {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
};
const selfUs = new Map<number, number>();
profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const byFunction = new Map<string, number>();
for (const node of profile.nodes) {
  const us = selfUs.get(node.id) ?? 0;
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url ? `${url.replace(/^.*\//, '')}:${lineNumber + 1}` : '';
  const name = `${functionName || '(anonymous)'} ${where}`.trim();
  byFunction.set(name, (byFunction.get(name) ?? 0) + us);
}
const total = (profile.endTime - profile.startTime) / 1e6;
const idle = byFunction.get('(idle)') ?? 0;
console.log(`wall ${total.toFixed(1)} s, busy ${(total - idle / 1e6).toFixed(1)} s on the main thread`);
for (const [name, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
  console.log(
    `${(us / 1e6).toFixed(2).padStart(7)} s  ${((100 * us) / 1e6 / total).toFixed(1).padStart(5)} %  ${name}`,
  );
}
