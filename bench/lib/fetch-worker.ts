// Child process of bench/fetch.ts: resolves the release on the fake API and fetches every flavor
// and arch with the product's parallelism bound, then reports time and its own peak RSS (the
// parent cannot see a child's memory otherwise).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fetchFlavorArtifacts, findFlavorAsset, resolveRelease } from '../../src/gardenlinux';
import { mapLimit } from '../../src/util/concurrency';
import { consoleLogger } from '../../src/util/logger';

interface Job {
  asset: string;
  kind: 'kvm' | 'metal';
  arch: 'amd64' | 'arm64';
}

const [apiUrl, token, version, outDir, jobsJson, limitText] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
  string,
];
const jobs = JSON.parse(jobsJson) as Job[];
const logger = consoleLogger();
const started = performance.now();
const release = await resolveRelease({ apiUrl, token, version, logger });
const results = await mapLimit(jobs, Number(limitText), (job) => {
  const asset = findFlavorAsset(release, { asset: job.asset }, job.arch);
  return fetchFlavorArtifacts({
    asset,
    kind: job.kind,
    arch: job.arch,
    dir: join(outDir, asset.name),
    token,
    apiUrl,
    logger,
  });
});
const seconds = (performance.now() - started) / 1000;
const bytes = results.reduce((n, r) => n + r.archive.size, 0);
const cpu = process.cpuUsage();
// CPU of the xz children (reaped ones), from /proc: cutime + cstime in clock ticks (100 Hz on Linux).
const stat = readFileSync('/proc/self/stat', 'utf8');
const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
const childCpuSeconds = (Number(fields[13]) + Number(fields[14])) / 100;
process.stdout.write(
  `${JSON.stringify({ seconds, bytes, maxRssKiB: process.resourceUsage().maxRSS, cpuSeconds: (cpu.user + cpu.system) / 1e6, childCpuSeconds })}\n`,
);
