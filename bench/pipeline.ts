// End-to-end benchmark (docs/BENCHMARKS.md): a generated release shaped like a real one (the four default
// flavors x amd64/arm64, real kernels and EFI stubs, a sparse 4 GiB .raw) served by the loopback GitHub API,
// published to a real docker-registry on loopback, timed three ways in the same run:
//   1. the action as users run it (bundled dist/index.js, INPUT_* variables), then the same run again (a no-op);
//      with the PATH of a GitHub-hosted runner, where the weekly workflow runs: no ukify there, so the default
//      `uki-builder: auto` builds natively (BENCH_ONLY=...,ukify adds a run with ukify on PATH, as auto then uses it);
//   2. the reference shell workflow (bench/reference-shell.sh: curl, tar -xf, cpio | xz, ukify, skopeo);
//   3. the bound: `xz -dc` of every asset to /dev/null, one after another.
//   4. the boot phase (BENCH_ONLY=...,boot, on by default): a bootable release of the same shape (real kernels,
//      busybox initrds, squashfs and raw disks of the same sizes) published with `boot-test: none` and with
//      `boot-test: native`, same release, same run: seconds per boot and accelerator, and the whole run's ratio.
// Each repetition uses fresh registries; the table shows medians.
//   npm run bench                      full size, 3 repetitions
//   BENCH_QUICK=1 npm run bench        small release, for a quick check of the harness
// Knobs: BENCH_RUNS, BENCH_DIR (cache of the generated release), BENCH_RAW_GIB, BENCH_RAW_DATA_MIB,
// BENCH_SQUASHFS_MIB, BENCH_ROOTFS_MIB, BENCH_ONLY=action|ukify|shell|bound (comma-separated), BENCH_SHELL_RUNS,
// BENCH_PROF=DIR (node --cpu-prof of the action into DIR), BENCH_INPUTS='{"concurrency":"4"}' (extra inputs),
// BENCH_DIST=DIR (run that build of the action instead of ./dist), BENCH_BOOT_ACCEL=auto|kvm|tcg.
import { spawn } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_FLAVORS } from '../src/pipeline/flavors';
import { cachedSampleRelease } from './lib/cached-release';
import { startGitHubApiServer } from '../src/sample/github-server';
import type { SampleRelease } from '../src/sample/release';
import { startRegistry } from '../__tests__/helpers/registry';
import { makeBootableArtifacts } from '../__tests__/helpers/bootable';

const ROOT = resolve(import.meta.dirname, '..');
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const quick = process.env.BENCH_QUICK === '1';
const num = (name: string, fallback: number): number =>
  process.env[name] ? Number(process.env[name]) : fallback;
const runs = num('BENCH_RUNS', quick ? 1 : 3);
// The reference takes minutes at full size (single-threaded xz -6 of every initrd-uki): fewer runs are enough
// for a ratio that is far from its target.
const shellRuns = num('BENCH_SHELL_RUNS', runs);
// Another build of the action (e.g. an older commit's dist/, to measure a change against it).
const dist = resolve(process.env.BENCH_DIST ?? join(ROOT, 'dist'));
const only = new Set((process.env.BENCH_ONLY ?? 'action,shell,bound,boot').split(','));
const version = '2150.1.0';
const token = 'ghs_benchtoken';
const tools = process.env.IRONCORE_TOOLS_DIR;
if (!tools)
  throw new Error('run `eval "$(bash .ci/setup)"` first: the bench needs real kernels, stubs and ukify');

// Relative sizes of a real release (DOMAIN.md section 2): rootfs tarball and squashfs of hundreds of MB,
// an initrd of tens, a multi-GB .raw that is mostly holes. entropy 0.7: most content does not compress.
const sizes = {
  rootfs: num('BENCH_ROOTFS_MIB', quick ? 24 : 200) * MiB,
  initrd: (quick ? 8 : 40) * MiB,
  squashfs: num('BENCH_SQUASHFS_MIB', quick ? 32 : 200) * MiB,
  raw: num('BENCH_RAW_GIB', quick ? 0.5 : 4) * GiB,
  rawData: num('BENCH_RAW_DATA_MIB', quick ? 64 : 600) * MiB,
  entropy: 0.7,
};
const flavors = DEFAULT_FLAVORS.map((f) => ({ asset: f.asset, kind: f.variant }));
const arches = ['amd64', 'arm64'] as const;
const base = process.env.BENCH_DIR ?? join(tmpdir(), 'ironcore-bench-pipeline');
const key = JSON.stringify({ version, flavors, sizes, layout: 'flat', v: 1 });
const genDir = join(base, `release-${Buffer.from(key).toString('base64url').slice(-24)}`);

function release(): Promise<SampleRelease> {
  return cachedSampleRelease(genDir, key, async () => {
    const [kernelAmd, kernelArm, stubAmd, stubArm] = await Promise.all(
      [
        'kernels/vmlinuz-amd64',
        'kernels/vmlinuz-arm64',
        'stubs/linuxx64.efi.stub',
        'stubs/linuxaa64.efi.stub',
      ].map((p) => readFile(join(tools!, p))),
    );
    return {
      version,
      commit8: 'b3bc4f1a',
      flavors,
      arches,
      // Flat members with the .raw as a GNU sparse member, as upstream ships it.
      layout: 'flat',
      sparseRaw: true,
      sizes,
      withLogs: true,
      kernel: { amd64: kernelAmd!, arm64: kernelArm! },
      stubs: { amd64: stubAmd!, arm64: stubArm! },
    };
  });
}

/** The same shape, bootable: one set of boot artifacts per arch, shared by the flavors of that arch. */
function bootableRelease(): Promise<SampleRelease> {
  const bootKey = JSON.stringify({ version, flavors, sizes, layout: 'flat', bootable: 1 });
  const dir = join(base, `bootable-${Buffer.from(bootKey).toString('base64url').slice(-24)}`);
  return cachedSampleRelease(dir, bootKey, async () => {
    const files: Record<string, { initrd: string; squashfs: string; raw: string }> = {};
    const stubs: Record<string, Buffer> = {};
    const kernel: Record<string, Buffer> = {};
    for (const arch of arches) {
      const art = await makeBootableArtifacts({
        dir: join(dir, `boot-${arch}`),
        arch,
        version,
        squashfsPadding: sizes.squashfs,
        rawSize: sizes.raw,
        rawData: sizes.rawData,
      });
      files[arch] = { initrd: art.initrd, squashfs: art.squashfs, raw: art.raw };
      stubs[arch] = await readFile(art.stub);
      kernel[arch] = await readFile(art.kernel);
    }
    return {
      version,
      commit8: 'b00710ad',
      flavors,
      arches,
      layout: 'flat',
      sparseRaw: true,
      sizes,
      kernel: { amd64: kernel.amd64!, arm64: kernel.arm64! },
      stubs: { amd64: stubs.amd64!, arm64: stubs.arm64! },
      files,
    };
  });
}

interface Timed {
  seconds: number;
  code: number;
  stdout: string;
  /** stdout lines with the seconds since start at which they arrived (phases of the action). */
  lines: { t: number; line: string }[];
}

function run(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; stdout?: 'pipe' | number; cwd?: string } = {},
): Promise<Timed> {
  const started = performance.now();
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      cwd: options.cwd ?? ROOT,
      stdio: ['ignore', options.stdout ?? 'pipe', 'pipe'],
    });
    const lines: Timed['lines'] = [];
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout?.on('data', (d: Buffer) => {
      const t = (performance.now() - started) / 1000;
      stdout += d.toString();
      const parts = (partial + d.toString()).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) lines.push({ t, line });
    });
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = (performance.now() - started) / 1000;
      if (code !== 0) {
        reject(
          new Error(`${command} ${args.join(' ')} exited with ${code}: ${stderr}\n${stdout.slice(-4000)}`),
        );
      } else resolveRun({ seconds, code: code ?? 0, stdout, lines });
    });
  });
}

async function actionInputs(): Promise<Record<string, string>> {
  const spec = parseYaml(await readFile(join(ROOT, 'action.yml'), 'utf8')) as {
    inputs: Record<string, { default?: string }>;
  };
  const inputs: Record<string, string> = {};
  for (const [name, input] of Object.entries(spec.inputs)) {
    inputs[name] = String(input.default ?? '')
      .replace('${{ github.token }}', token)
      .replace('${{ github.repository_owner }}', 'bench');
  }
  return inputs;
}

interface ActionResult {
  seconds: number;
  maxRssKiB: number;
  /** Peak bytes allocated on disk below the run's work folder (holes do not count), sampled every 250 ms. */
  peakDiskBytes: number;
  fileBytesRead: number;
  diskReadBytes: number;
  cpuSeconds: number;
  /** CPU of the action's node process plus every child it waited for (xz, ukify). */
  treeCpuSeconds: number;
  /** CPU the registry spent during the action's run (receiving, hashing, storing). */
  registryCpuSeconds: number;
  /** Busy CPU of the whole machine during the run (all processes and the kernel's own threads), from /proc/stat. */
  machineCpuSeconds: number;
  bytesUploaded: number;
  digests: Record<string, string>;
  published: boolean;
  bootTests: BootRecord[];
  lines: Timed['lines'];
}

/** The action as GitHub runs it: `node dist/index.js` with INPUT_* and the output/summary files. */
async function runAction(
  apiUrl: string,
  registry: string,
  namespace: string,
  work: string,
  registryPid: number | undefined,
  withUkify: boolean,
  prof?: string,
  extraInputs: Record<string, string> = {},
): Promise<ActionResult> {
  await mkdir(work, { recursive: true });
  const outputFile = join(work, 'output');
  const summaryFile = join(work, 'summary');
  const probeFile = join(work, 'probe.json');
  await writeFile(outputFile, '');
  await writeFile(summaryFile, '');
  const inputs = {
    ...(await actionInputs()),
    version,
    registry,
    namespace,
    ...(JSON.parse(process.env.BENCH_INPUTS ?? '{}') as Record<string, string>),
    ...extraInputs,
  };
  // The action's temporary work folder lands below `work` (TMPDIR), so its disk use can be sampled there.
  const tmp = join(work, 'tmp');
  await mkdir(tmp, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    PATH: withUkify ? process.env.PATH : pathWithoutUkify(),
    HOME: process.env.HOME,
    TMPDIR: tmp,
    GITHUB_API_URL: apiUrl,
    GITHUB_OUTPUT: outputFile,
    GITHUB_STEP_SUMMARY: summaryFile,
    RUNNER_TEMP: work,
    BENCH_PROBE_OUT: probeFile,
  };
  for (const [name, value] of Object.entries(inputs)) env[`INPUT_${name.toUpperCase()}`] = value;
  const profArgs = prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [];
  const treeBefore = procCpuSeconds('self', true);
  const machineBefore = machineBusySeconds();
  const registryBefore = registryPid ? procCpuSeconds(registryPid) : NaN;
  const disk = sampleDiskUse(work);
  const timed = await run(
    process.execPath,
    [
      ...profArgs,
      ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      '--import',
      join(ROOT, 'bench/lib/probe.mjs'),
      join(dist, 'index.js'),
    ],
    { env, cwd: work },
  );
  const peakDiskBytes = await disk.stop();
  const treeCpuSeconds = procCpuSeconds('self', true) - treeBefore;
  const machineCpuSeconds = machineBusySeconds() - machineBefore;
  const registryCpuSeconds = registryPid ? procCpuSeconds(registryPid) - registryBefore : NaN;
  const failed = timed.lines.find((l) => l.line.startsWith('::error::'));
  if (failed) throw new Error(`the action failed: ${failed.line}`);
  const probe = JSON.parse(await readFile(probeFile, 'utf8')) as {
    maxRssKiB: number;
    fileBytesRead: number;
    io: { read_bytes: number };
    cpu: number;
  };
  const summary = await readFile(summaryFile, 'utf8');
  const output = await readFile(outputFile, 'utf8');
  const digests = /digests<<(.+)\n([^\n]*)\n\1/.exec(output)?.[2] ?? '{}';
  const published = /published<<(.+)\ntrue\n\1/.test(output);
  const bootTests = /boot-tests<<(.+)\n([^\n]*)\n\1/.exec(output)?.[2] ?? '[]';
  return {
    seconds: timed.seconds,
    maxRssKiB: probe.maxRssKiB,
    peakDiskBytes,
    fileBytesRead: probe.fileBytesRead,
    diskReadBytes: probe.io.read_bytes,
    cpuSeconds: probe.cpu / 1e6,
    treeCpuSeconds,
    registryCpuSeconds,
    machineCpuSeconds,
    bytesUploaded: Number(/Blob bytes uploaded: (\d+)/.exec(summary)?.[1] ?? 0),
    digests: JSON.parse(digests) as Record<string, string>,
    published,
    bootTests: JSON.parse(bootTests) as BootRecord[],
    lines: timed.lines,
  };
}

interface BootRecord {
  image: string;
  path: string;
  architecture: string;
  accelerator: string;
  result: string;
  seconds: number;
}

/**
 * PATH without the folders that hold a `ukify`: what a GitHub-hosted Ubuntu runner has (systemd-ukify is not
 * installed there), so the action's default `uki-builder: auto` takes the native builder, as in the weekly run.
 * The bench's own PATH keeps ukify for the reference shell workflow, which needs it.
 */
function pathWithoutUkify(): string {
  return (process.env.PATH ?? '')
    .split(':')
    .filter((dir) => dir && !existsSync(join(dir, 'ukify')))
    .join(':');
}

/** Samples the bytes allocated below `dir` (st_blocks, so sparse holes are free) until stopped; the peak. */
function sampleDiskUse(dir: string): { stop(): Promise<number> } {
  let peak = 0;
  let stopped = false;
  const walk = async (path: string): Promise<number> => {
    let total = 0;
    const entries = await readdir(path, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const child = join(path, e.name);
      if (e.isDirectory()) total += await walk(child);
      else
        total += await lstat(child).then(
          (st) => st.blocks * 512,
          () => 0,
        );
    }
    return total;
  };
  const loop = (async () => {
    while (!stopped) {
      peak = Math.max(peak, await walk(dir));
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return peak;
    },
  };
}

/** Busy time of all CPUs together (everything but idle and iowait), from the first line of /proc/stat. */
function machineBusySeconds(): number {
  try {
    const ticks = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = ticks;
    return (user + nice + system + irq + softirq + steal) / 100;
  } catch {
    return NaN;
  }
}

/** utime + stime of a process from /proc (clock ticks of 1/100 s on Linux); `self` for children too. */
function procCpuSeconds(pid: number | 'self', children = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime/stime are fields 14/15, cutime/cstime 16/17.
    const at = children ? 13 : 11;
    return (Number(fields[at]) + Number(fields[at + 1])) / 100;
  } catch {
    return NaN;
  }
}

async function bound(assets: SampleRelease['assets']): Promise<number> {
  const devNull = openSync('/dev/null', 'w');
  try {
    let seconds = 0;
    for (const a of assets) seconds += (await run('xz', ['-dc', a.path], { stdout: devNull })).seconds;
    return seconds;
  } finally {
    closeSync(devNull);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const fmtMiB = (n: number): string => `${(n / MiB).toFixed(0)} MiB`;

/** The action's log reduced to its phases: group starts, fetch/UKI/push lines, with their arrival times. */
function phases(lines: Timed['lines']): string {
  const keep =
    /^::group::|: (raw|kernel|initrd|squashfs|efiStub|release|manifest|sbom|cmdline)(, |\s)|UKI built|@sha256|sha256:[0-9a-f]{64} \(/;
  return lines
    .filter((l) => keep.test(l.line))
    .map((l) => `${l.t.toFixed(1).padStart(6)} s  ${l.line.replace(/^::group::/, '== ').slice(0, 150)}`)
    .join('\n');
}

/** References differ by registry port and namespace between runs; the digests must not. */
function differences(x: Record<string, string>, y: Record<string, string>): string[] {
  const strip = (d: Record<string, string>): Map<string, string> =>
    new Map(Object.entries(d).map(([k, v]) => [k.replace(/^[^/]+\/bench-[a-z0-9-]+\//, ''), v]));
  const [sx, sy] = [strip(x), strip(y)];
  const keys = new Set([...sx.keys(), ...sy.keys()]);
  return [...keys].filter((k) => sx.get(k) !== sy.get(k)).map((k) => `${k}: ${sx.get(k)} vs ${sy.get(k)}`);
}

/** One publication of the release into a fresh registry, then the same run again (which must be a no-op). */
async function measureAction(i: number, withUkify: boolean): Promise<void> {
  const registry = await startRegistry();
  const what = withUkify ? 'action with ukify on PATH' : 'action';
  try {
    const ns = withUkify ? `bench-ukify-${i}` : `bench-${i}`;
    const prof = process.env.BENCH_PROF && i === 1 ? resolve(process.env.BENCH_PROF) : undefined;
    const a = await runAction(
      server.apiUrl,
      registry.host,
      ns,
      join(work, `${ns}`),
      registry.pid,
      withUkify,
      prof,
    );
    (withUkify ? results.ukify : results.action).push(a);
    await writeFile(
      join(base, `${withUkify ? 'ukify' : 'action'}-run-${i}.log`),
      a.lines.map((l) => `${l.t.toFixed(2)} ${l.line}`).join('\n'),
    );
    const builders = [
      ...new Set(a.lines.map((l) => /UKI built with (\w+)/.exec(l.line)?.[1]).filter(Boolean)),
    ];
    console.log(
      `run ${i}: ${what} ${a.seconds.toFixed(1)} s (UKIs built with ${builders.join(', ') || 'nothing'}), ` +
        `peak RSS ${(a.maxRssKiB / 1024).toFixed(0)} MiB, peak disk ${fmtMiB(a.peakDiskBytes)}, ` +
        `${fmtMiB(a.fileBytesRead)} read from files, ${fmtMiB(a.diskReadBytes)} from disk, ${fmtMiB(a.bytesUploaded)} sent, node CPU ${a.cpuSeconds.toFixed(1)} s, ` +
        `node + children CPU ${a.treeCpuSeconds.toFixed(1)} s, registry CPU ${a.registryCpuSeconds.toFixed(1)} s, ` +
        `machine busy ${a.machineCpuSeconds.toFixed(1)} CPU-s`,
    );
    if (i === 1) console.log(phases(a.lines));
    const again = await runAction(
      server.apiUrl,
      registry.host,
      ns,
      join(work, `rerun-${ns}`),
      registry.pid,
      withUkify,
    );
    results.rerun.push(again);
    console.log(
      `run ${i}: re-run ${again.seconds.toFixed(2)} s, published=${again.published}, ${again.bytesUploaded} blob bytes sent`,
    );
    const rerunDiff = differences(again.digests, a.digests);
    if (rerunDiff.length) throw new Error(`the re-run names other digests: ${rerunDiff.join('; ')}`);
    // Every run names the same digests: repetitions, and ukify against the native builder (the same UKI bytes).
    const first = results.action[0] ?? results.ukify[0];
    const runDiff = first && first !== a ? differences(a.digests, first.digests) : [];
    if (runDiff.length)
      throw new Error(`run ${i} (${what}) differs from the first run: ${runDiff.join('; ')}`);
    if (Object.keys(a.digests).length === 0) throw new Error('the action reported no digests');
  } finally {
    await registry.stop();
  }
}

/** The bootable release, published without and with `boot-test: native`, each into a fresh registry. */
async function measureBoot(i: number, apiUrl: string): Promise<void> {
  for (const mode of ['none', 'native'] as const) {
    const registry = await startRegistry();
    try {
      const ns = `bench-boot-${mode}-${i}`;
      const r = await runAction(apiUrl, registry.host, ns, join(work, ns), registry.pid, false, undefined, {
        'boot-test': mode,
        'boot-test-accel': process.env.BENCH_BOOT_ACCEL ?? 'auto',
      });
      results.boot[mode].push(r);
      console.log(
        `run ${i}: bootable release, boot-test ${mode}: ${r.seconds.toFixed(1)} s, peak RSS ${(r.maxRssKiB / 1024).toFixed(0)} MiB`,
      );
      for (const b of r.bootTests)
        console.log(
          `  boot ${b.image.replace(/^[^/]+\//, '')} ${b.path}: ${b.result} in ${b.seconds.toFixed(1)} s (${b.accelerator})`,
        );
      if (mode === 'native' && r.bootTests.some((b) => b.result !== 'passed'))
        throw new Error('a boot test failed');
    } finally {
      await registry.stop();
    }
  }
}

// BENCH_ONLY=boot needs only the bootable release.
const needsMain = ['action', 'ukify', 'shell', 'bound'].some((x) => only.has(x));
const generated: SampleRelease = needsMain ? await release() : { version, commit8: '', assets: [] };
const archives = generated.assets.filter((a) => !a.companion);
const compressed = archives.reduce((n, a) => n + a.size, 0);
const server = await startGitHubApiServer({
  releases: [
    {
      tag: version,
      publishedAt: '2026-01-15T10:00:00Z',
      assets: generated.assets.map((a) => ({ name: a.name, path: a.path })),
    },
  ],
  token,
});

const results: {
  action: ActionResult[];
  ukify: ActionResult[];
  rerun: ActionResult[];
  shell: number[];
  bound: number[];
  boot: { none: ActionResult[]; native: ActionResult[] };
} = { action: [], ukify: [], rerun: [], shell: [], bound: [], boot: { none: [], native: [] } };
const work = join(base, 'work');
try {
  console.log(
    `machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / GiB).toFixed(0)} GiB; load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  if (needsMain)
    console.log(
      `release: ${archives.length} archives, ${fmtMiB(compressed)} compressed; per arch: rootfs ${fmtMiB(sizes.rootfs)}, squashfs ${fmtMiB(sizes.squashfs)}, initrd ${fmtMiB(sizes.initrd)}, real kernel; .raw ${(sizes.raw / GiB).toFixed(1)} GiB with ${fmtMiB(sizes.rawData)} of data`,
    );
  for (let i = 1; i <= runs; i++) {
    await rm(work, { recursive: true, force: true });
    if (only.has('bound')) {
      const b = await bound(archives);
      results.bound.push(b);
      console.log(`run ${i}: bound (xz -dc of every asset) ${b.toFixed(1)} s`);
    }
    if (only.has('action')) await measureAction(i, false);
    if (only.has('ukify')) await measureAction(i, true);
    if (only.has('shell') && i <= shellRuns) {
      const registry = await startRegistry();
      try {
        const shellWork = join(work, `shell-${i}`);
        const s = await run('bash', [
          join(ROOT, 'bench/reference-shell.sh'),
          server.apiUrl,
          token,
          version,
          registry.host,
          `bench-${i}`,
          shellWork,
        ]);
        results.shell.push(s.seconds);
        console.log(`run ${i}: reference shell ${s.seconds.toFixed(1)} s`);
        await rm(shellWork, { recursive: true, force: true });
      } finally {
        await registry.stop();
      }
    }
  }
  if (only.has('boot')) {
    const bootable = await bootableRelease();
    const bootServer = await startGitHubApiServer({
      releases: [
        {
          tag: version,
          publishedAt: '2026-01-15T10:00:00Z',
          assets: bootable.assets.map((x) => ({ name: x.name, path: x.path })),
        },
      ],
      token,
    });
    try {
      for (let i = 1; i <= runs; i++) {
        await rm(work, { recursive: true, force: true });
        await measureBoot(i, bootServer.apiUrl);
      }
    } finally {
      await bootServer.stop();
    }
  }
} finally {
  await server.stop();
  await rm(work, { recursive: true, force: true });
}

const a = median(results.action.map((r) => r.seconds));
const s = median(results.shell);
const b = median(results.bound);
const row = (name: string, value: string, target = ''): string =>
  `| ${name.padEnd(34)} | ${value.padEnd(22)} | ${target.padEnd(16)} |`;
const lines = [
  row('metric', `median of ${runs}`, 'target'),
  `|${'-'.repeat(36)}|${'-'.repeat(24)}|${'-'.repeat(18)}|`,
];
if (results.action.length) lines.push(row('action (s)', a.toFixed(1)));
if (results.shell.length)
  lines.push(row(`reference shell (s, ${results.shell.length} run(s))`, s.toFixed(1)));
if (results.bound.length) lines.push(row('bound: xz -dc of every asset (s)', b.toFixed(1)));
if (results.action.length && results.shell.length)
  lines.push(row('action / shell', (a / s).toFixed(2), '<= 0.5'));
if (results.action.length && results.bound.length)
  lines.push(row('action / bound', (a / b).toFixed(2), '<= 2.0'));
if (results.ukify.length) {
  const u = median(results.ukify.map((r) => r.seconds));
  lines.push(row('action, ukify on PATH (s)', u.toFixed(1)));
  if (results.bound.length) lines.push(row('action, ukify on PATH / bound', (u / b).toFixed(2)));
  if (results.shell.length) lines.push(row('action, ukify on PATH / shell', (u / s).toFixed(2)));
}
if (results.action.length) {
  const m = (f: (r: ActionResult) => number): number => median(results.action.map(f));
  lines.push(
    row('peak RSS (node)', `${(m((r) => r.maxRssKiB) / 1024).toFixed(0)} MiB`, '<= 256 MB'),
    row('peak disk use of the work folder', fmtMiB(m((r) => r.peakDiskBytes))),
    row('bytes read from files (node)', fmtMiB(m((r) => r.fileBytesRead))),
    row('bytes read from disk (node)', fmtMiB(m((r) => r.diskReadBytes))),
    row('blob bytes sent to the registry', fmtMiB(m((r) => r.bytesUploaded))),
    row('node CPU (s)', m((r) => r.cpuSeconds).toFixed(1)),
    row('node + xz/ukify children CPU (s)', m((r) => r.treeCpuSeconds).toFixed(1)),
    row('registry CPU (s)', m((r) => r.registryCpuSeconds).toFixed(1)),
    row('machine busy, all CPUs (s)', m((r) => r.machineCpuSeconds).toFixed(1)),
    row('re-run (s)', median(results.rerun.map((r) => r.seconds)).toFixed(2), '< 3'),
    row('re-run blob bytes sent', String(Math.max(...results.rerun.map((r) => r.bytesUploaded))), '0'),
  );
}
if (results.boot.native.length) {
  const none = median(results.boot.none.map((r) => r.seconds));
  const native = median(results.boot.native.map((r) => r.seconds));
  const boots = results.boot.native.flatMap((r) => r.bootTests);
  const accels = [...new Set(boots.map((x) => x.accelerator))].join(', ');
  const byPath = (p: string): string => {
    const xs = boots.filter((x) => x.path === p).map((x) => x.seconds);
    return xs.length ? `${median(xs).toFixed(1)} s (${xs.length} boots)` : '-';
  };
  lines.push(
    row('bootable release, boot-test none (s)', none.toFixed(1)),
    row(`boot-test native (s), ${accels}`, native.toFixed(1)),
    row('boot-test native / none', (native / none).toFixed(2)),
    row(
      'boot phase share of the run',
      `${(((native - none) / native) * 100).toFixed(0)} %`,
      '<= 20 % on KVM',
    ),
    row('boots per native run', String(boots.length / results.boot.native.length)),
    row('median boot, metal UKI', byPath('uki')),
    row('median boot, metal PXE', byPath('pxe')),
    row('median boot, kvm disk', byPath('disk')),
    row(
      'boot seconds summed (one run)',
      (boots.reduce((n, x) => n + x.seconds, 0) / results.boot.native.length).toFixed(1),
    ),
  );
}
console.log(`\n${lines.join('\n')}`);
console.log(
  `load at the end: ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
