// Benchmark of the Garden Linux fetch: a release of >= 1 GiB of compressed assets served from the
// loopback GitHub API, fetched (a) by us (download -> verify -> xz -> tar -> files, in parallel)
// and (b) the way the shell workflow does it (curl -sL, then tar -xf, one asset after the other,
// plus the nested PXE tarball and the stub out of the rootfs tarball).
// Targets: ours/reference <= 0.7, our peak RSS <= 200 MB.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cachedSampleRelease } from './lib/cached-release';
import { startGitHubApiServer } from '../src/sample/github-server';
import type { SampleRelease } from '../src/sample/release';

const MiB = 1024 * 1024;
const version = '2150.1.0';
const limit = Number(process.env.BENCH_FETCH_LIMIT ?? 4);
const flavors = [
  { asset: 'kvm-gardener_prod', kind: 'kvm' as const },
  { asset: 'baremetal_pxe', kind: 'metal' as const },
];
const arches = ['amd64', 'arm64'] as const;
const sizes = {
  rootfs: 200 * MiB,
  kernel: 12 * MiB,
  initrd: 40 * MiB,
  squashfs: 150 * MiB,
  raw: 3 * 1024 * MiB,
  rawData: 400 * MiB,
  entropy: 0.7,
};
const token = 'ghs_benchtoken';
const base = process.env.BENCH_DIR ?? join(tmpdir(), 'ironcore-bench-fetch');
const genDir = join(base, 'release');
const key = JSON.stringify({ version, flavors, arches, sizes, layout: 'flat', v: 1 });

function generate(): Promise<SampleRelease> {
  return cachedSampleRelease(genDir, key, () =>
    Promise.resolve({
      version,
      commit8: 'b3bc4f1a',
      flavors,
      arches,
      layout: 'flat',
      sparseRaw: true,
      sizes,
      withLogs: true,
    }),
  );
}

/**
 * The worker is bundled with esbuild and run by plain node, as the action ships (dist/ is a bundle):
 * running it through tsx would add tsx's own ~50 MB to the RSS we measure.
 */
async function bundleWorker(): Promise<string> {
  const { build } = await import('esbuild');
  const outfile = join(
    import.meta.dirname,
    '..',
    'node_modules',
    '.cache',
    'ironcore-bench',
    'fetch-worker.mjs',
  );
  await build({
    entryPoints: [join(import.meta.dirname, 'lib/fetch-worker.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    packages: 'external',
    logLevel: 'warning',
  });
  return outfile;
}

function runOurs(
  worker: string,
  apiUrl: string,
  out: string,
): Promise<{
  seconds: number;
  bytes: number;
  maxRssKiB: number;
  cpuSeconds: number;
  childCpuSeconds: number;
  wall: number;
}> {
  const jobs = flavors.flatMap((f) => arches.map((arch) => ({ asset: f.asset, kind: f.kind, arch })));
  const t = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        ...(process.env.BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}`] : []),
        worker,
        apiUrl,
        token,
        version,
        out,
        JSON.stringify(jobs),
        String(limit),
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`fetch worker exited with ${code}`));
      resolve({
        ...JSON.parse(stdout.trim().split('\n').pop() as string),
        wall: (performance.now() - t) / 1000,
      });
    });
  });
}

// Asynchronous child processes: the fake server lives in this process and must keep serving.
const run = promisify(execFile);

async function runReference(
  release: SampleRelease,
  browserUrls: Map<string, string>,
  out: string,
): Promise<number> {
  const t = performance.now();
  for (const a of release.assets.filter((x) => !x.companion)) {
    const dir = join(out, a.base);
    const file = join(out, a.name);
    await mkdir(dir, { recursive: true });
    await run('curl', ['-sSfL', '-o', file, browserUrls.get(a.name) as string]);
    await run('tar', ['-xf', file, '-C', dir]);
    if (a.kind === 'metal') {
      await run('tar', ['-xzf', join(dir, `${a.base}.pxe.tar.gz`), '-C', dir]);
      const stub = `usr/lib/systemd/boot/efi/${a.arch === 'arm64' ? 'linuxaa64' : 'linuxx64'}.efi.stub`;
      await run('tar', ['-xf', join(dir, `${a.base}.tar`), '-C', dir, stub]);
    }
  }
  return (performance.now() - t) / 1000;
}

/** CPU seconds of this process's reaped children (cutime + cstime, 100 Hz ticks). */
async function childrenCpu(): Promise<number> {
  const stat = await readFile('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

const release = await generate();
const archives = release.assets.filter((a) => !a.companion);
const total = archives.reduce((n, a) => n + a.size, 0);
console.log(
  `release: ${archives.length} archives, ${(total / MiB).toFixed(0)} MiB compressed (+ ${release.assets.length - archives.length} logs companions)`,
);
if (total < 1024 * MiB) console.log('warning: less than 1 GiB of assets');

const server = await startGitHubApiServer({
  releases: [{ tag: version, assets: release.assets.map((a) => ({ name: a.name, path: a.path })) }],
  token,
});
try {
  const res = await fetch(`${server.apiUrl}/repos/gardenlinux/gardenlinux/releases/tags/${version}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const json = (await res.json()) as { assets: { name: string; browser_download_url: string }[] };
  const browserUrls = new Map(json.assets.map((a) => [a.name, a.browser_download_url]));

  const oursDir = join(base, 'ours');
  const refDir = join(base, 'reference');
  await rm(oursDir, { recursive: true, force: true });
  await rm(refDir, { recursive: true, force: true });

  // The runners this was built on are shared: interleave rounds and report the median of each side.
  const rounds = Number(process.env.BENCH_FETCH_ROUNDS ?? 1);
  const oursRuns: Awaited<ReturnType<typeof runOurs>>[] = [];
  const refRuns: { seconds: number; cpu: number }[] = [];
  const worker = await bundleWorker();
  for (let round = 1; round <= rounds; round++) {
    await mkdir(oursDir, { recursive: true });
    console.log(`(a) round ${round}/${rounds}: ours: fetch + verify + unpack, ${limit} in parallel ...`);
    const serverCpu0 = process.cpuUsage();
    const ours = await runOurs(worker, server.apiUrl, oursDir);
    const serverCpu = process.cpuUsage(serverCpu0);
    console.log(
      `    ${ours.seconds.toFixed(2)} s, node CPU ${ours.cpuSeconds.toFixed(1)} s, xz CPU ${ours.childCpuSeconds.toFixed(1)} s, ` +
        `peak RSS ${(ours.maxRssKiB / 1024).toFixed(0)} MiB (fake server CPU ${((serverCpu.user + serverCpu.system) / 1e6).toFixed(1)} s)`,
    );
    oursRuns.push(ours);
    await rm(oursDir, { recursive: true, force: true });
    if (process.env.BENCH_FETCH_ONLY === 'ours') continue;
    await mkdir(refDir, { recursive: true });
    console.log(`(b) round ${round}/${rounds}: reference: curl -sL + tar -xf, sequential ...`);
    const cpu0 = await childrenCpu();
    const seconds = await runReference(release, browserUrls, refDir);
    const cpu = (await childrenCpu()) - cpu0;
    console.log(`    ${seconds.toFixed(2)} s, CPU ${cpu.toFixed(1)} s (curl, tar, xz, gzip)`);
    refRuns.push({ seconds, cpu });
    await rm(refDir, { recursive: true, force: true });
  }
  const oursSeconds = median(oursRuns.map((r) => r.seconds));
  const oursCpu = median(oursRuns.map((r) => r.cpuSeconds + r.childCpuSeconds));
  const rss = Math.max(...oursRuns.map((r) => r.maxRssKiB)) / 1024;
  console.log('');
  console.log(
    `assets:            ${(total / MiB).toFixed(0)} MiB compressed in ${archives.length} archives, ${rounds} round(s), medians`,
  );
  console.log(
    `ours:              ${oursSeconds.toFixed(2)} s (${(total / MiB / oursSeconds).toFixed(0)} MiB/s), CPU ${oursCpu.toFixed(1)} s (node + xz)`,
  );
  if (refRuns.length) {
    const refSeconds = median(refRuns.map((r) => r.seconds));
    console.log(
      `reference:         ${refSeconds.toFixed(2)} s (${(total / MiB / refSeconds).toFixed(0)} MiB/s), CPU ${median(refRuns.map((r) => r.cpu)).toFixed(1)} s`,
    );
    console.log(`ratio ours/ref:    ${(oursSeconds / refSeconds).toFixed(2)} (target <= 0.7)`);
  }
  console.log(
    `ours peak RSS:     ${rss.toFixed(0)} MiB, highest of the rounds (target <= 200 MB; node process, xz children excluded)`,
  );
} finally {
  await server.stop();
}
