// The world a reliability scenario runs in: a generated release (two flavors, amd64 and arm64) served by the
// GitHub API stand-in, a real docker-registry (htpasswd Basic auth, or Bearer tokens from the token service of
// the test helpers), and three fault-injecting proxies (the proxy of the registry fault tests): in front of
// the registry, of the API (127.0.0.1) and of the download host (127.0.0.2). The action only ever talks to
// the proxies. Every run publishes into its own namespace, so runs are independent and the registry can be
// walked per run; every run has its own TMPDIR and its own process group, so what it leaves behind (files,
// processes) is seen and charged to it.
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGitHubApiServer, type FakeRelease, type GitHubApiServer } from '../../src/sample/github-server';
import { createSamplePeStub } from '../../src/sample/pe-stub';
import { generateSampleRelease, type SampleArch } from '../../src/sample/release';
import { runAction, type ActionRun } from '../helpers/action';
import { makeBootableArtifacts } from '../helpers/bootable';
import { startRegistry, type RunningRegistry } from '../helpers/registry';
import { skopeoInspectRaw } from '../helpers/skopeo';
import { startTokenService, type TokenService } from '../helpers/token-service';
import { startProxy, type RunningProxy } from '../oci/registry/proxy';

export const VERSION = '2150.1.0';
export const CREDS = { username: 'publisher', password: 'Reg1stry-Pa55word-7f3c9e' };
export const GITHUB_TOKEN = 'ghs_SecretActionToken0123456789abcdef';

/** Two flavors in two repositories, both arches: 8 tags (4 arch images, 2 variant indexes, 2 combined). */
export const FLAVORS_YAML = [
  '- {image: gardenlinux, variant: metal, asset: baremetal_pxe}',
  '- {image: gardenlinux/gardener, variant: kvm, asset: kvm-gardener_prod}',
].join('\n');
export const ARCHES: SampleArch[] = ['amd64', 'arm64'];
export const EXPECTED_TAGS = 8;
/**
 * Blobs of a publication: metal has 4 layers per arch and one config (the same command line for both arches),
 * kvm a rootfs and a config (its console differs) per arch: 13; and the attachments, per repository the empty
 * config and three files per arch image: 14.
 */
export const EXPECTED_BLOBS = 13 + 14;
/** The artifactTypes every arch image's attachments have (sorted): the sample archives hold all three files. */
export const ATTACHMENT_TYPES = [
  'application/io.gardenlinux.manifest',
  'application/io.gardenlinux.release',
  'application/vnd.cyclonedx+json',
];

/** mulberry32: small, seeded, good enough to pick faults reproducibly. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The PRNG seed of a scenario's seed: the same seed number draws differently in different scenarios. */
export function scenarioSeed(slug: string, seed: number): number {
  return createHash('sha256').update(`${slug}/${seed}`).digest().readUInt32LE(0);
}

/** How many seeds per scenario: RELIABILITY_RUNS (for the recorded numbers), else `ci`. */
export function runCount(ci: number): number {
  const n = Number(process.env.RELIABILITY_RUNS);
  return Number.isInteger(n) && n > 0 ? n : ci;
}

/** Seeds 1..n, offset by RELIABILITY_SEED so a different set can be tried. */
export function seeds(n: number): number[] {
  const base = Number(process.env.RELIABILITY_SEED) || 0;
  return Array.from({ length: n }, (_, i) => base + i + 1);
}

/** Vitest's time limit for a scenario: every run may take `perRunSeconds`, at the counts asked for. */
export function scenarioTimeout(ciRuns: number, perRunSeconds: number): number {
  return 120_000 + runCount(ciRuns) * perRunSeconds * 1000;
}

export interface WorldOptions {
  /** How the registry authenticates: htpasswd Basic (default), or Bearer tokens from a token service. */
  auth?: 'basic' | 'token';
  /** Real Debian kernels, a busybox initrd, a squashfs and a raw disk that boot under QEMU (boot tests). */
  bootable?: boolean;
  extraReleases?: FakeRelease[];
}

export interface World {
  work: string;
  registry: RunningRegistry;
  /** The token service, when the registry uses token auth. */
  tokens?: TokenService;
  github: GitHubApiServer;
  registryProxy: RunningProxy;
  apiProxy: RunningProxy;
  downloadProxy: RunningProxy;
  apiUrl: string;
  /** The blobs of a clean publication (repository relative to the namespace -> digest -> size). */
  baseline: Map<string, Map<string, number>>;
  stop(): Promise<void>;
}

async function bootableFiles(
  dir: string,
): Promise<Pick<Parameters<typeof generateSampleRelease>[0], 'stubs' | 'kernel' | 'files'>> {
  const stubs: Partial<Record<SampleArch, Uint8Array>> = {};
  const kernel: Partial<Record<SampleArch, Uint8Array>> = {};
  const files: Partial<Record<SampleArch, { initrd: string; squashfs: string; raw: string }>> = {};
  for (const arch of ARCHES) {
    const a = await makeBootableArtifacts({ dir: join(dir, `boot-${arch}`), arch, version: VERSION });
    stubs[arch] = readFileSync(a.stub);
    kernel[arch] = readFileSync(a.kernel);
    files[arch] = { initrd: a.initrd, squashfs: a.squashfs, raw: a.raw };
  }
  return { stubs, kernel, files };
}

export async function startWorld(options: WorldOptions = {}): Promise<World> {
  const work = await mkdtemp(join(tmpdir(), 'reliability-'));
  const stopping: (() => Promise<void>)[] = [];
  const stop = async (): Promise<void> => {
    for (const s of stopping.reverse()) await s().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  };
  try {
    const release = await generateSampleRelease({
      dir: join(work, 'assets'),
      version: VERSION,
      commit8: '0badcafe',
      flavors: [
        { asset: 'baremetal_pxe', kind: 'metal' },
        { asset: 'kvm-gardener_prod', kind: 'kvm' },
      ],
      arches: ARCHES,
      layout: 'flat',
      sparseRaw: true,
      withLogs: true,
      ...(options.bootable
        ? await bootableFiles(join(work, 'bootable'))
        : { stubs: { amd64: createSamplePeStub('amd64'), arm64: createSamplePeStub('arm64') } }),
    });
    const tokens = options.auth === 'token' ? await startTokenService({ credentials: CREDS }) : undefined;
    if (tokens) stopping.push(() => tokens.stop());
    const [registry, github] = await Promise.all([
      startRegistry(tokens ? { token: tokens.registryOptions } : { htpasswd: CREDS }),
      startGitHubApiServer({
        releases: [
          {
            tag: VERSION,
            publishedAt: '2026-02-01T08:00:00Z',
            assets: release.assets.map((a) => ({ name: a.name, path: a.path })),
          },
          ...(options.extraReleases ?? []),
        ],
        token: GITHUB_TOKEN,
        // A public repository: runs without a token are served too (and rate-limited as such).
        allowAnonymous: true,
      }),
    ]);
    stopping.push(
      () => registry.stop(),
      () => github.stop(),
    );
    const registryProxy = await startProxy(registry.host);
    stopping.push(() => registryProxy.stop());
    const apiProxy = await startProxy(new URL(github.apiUrl).host);
    stopping.push(() => apiProxy.stop());
    const downloadProxy = await startProxy(new URL(github.downloadUrl).host, '127.0.0.2');
    stopping.push(() => downloadProxy.stop());
    const apiUrl = `http://${apiProxy.host}`;
    apiProxy.rewrite = [
      [github.apiUrl, apiUrl],
      [github.downloadUrl, `http://${downloadProxy.host}`],
    ];
    const world: World = {
      work,
      registry,
      ...(tokens ? { tokens } : {}),
      github,
      registryProxy,
      apiProxy,
      downloadProxy,
      apiUrl,
      baseline: new Map(),
      stop,
    };
    // The reference every run is compared with: a clean publication.
    const run = await publishThroughProxies(world, 'baseline');
    if (run.code !== 0 || run.leaks.length > 0)
      throw new Error(`the baseline publication failed: ${run.stdout}\n${run.leaks.join('\n')}`);
    const walk = await walkRegistry(world, 'baseline');
    world.baseline = relativeBlobs(walk, 'baseline');
    const blobs = [...world.baseline.values()].reduce((n, b) => n + b.size, 0);
    // (The bootable files share more between arches; only the generated release's count is fixed.)
    if (
      walk.tags.size !== EXPECTED_TAGS ||
      walk.referrers.size !== EXPECTED_TAGS / 2 ||
      (!options.bootable && blobs !== EXPECTED_BLOBS)
    )
      throw new Error(
        `the baseline has ${walk.tags.size} tags, ${walk.referrers.size} referrers tags and ${blobs} blobs`,
      );
    return world;
  } catch (error) {
    await stop();
    throw error;
  }
}

export function clearFaults(world: World): void {
  for (const p of [world.registryProxy, world.apiProxy, world.downloadProxy]) p.hook = undefined;
}

export interface PublishOptions {
  inputs?: Record<string, string>;
  onSpawn?: (child: ChildProcess) => void;
  timeoutMs?: number;
  env?: Record<string, string>;
  /** The action's TMPDIR (its work folder goes there), which the caller removes; default: a fresh folder of the world. */
  tmpdir?: string;
  /** The run was SIGKILLed: it cannot clean up, so files left in its TMPDIR are not charged to it. */
  killed?: () => boolean;
  /** No GitHub token (an anonymous run). */
  anonymous?: boolean;
}

export interface WorldRun extends ActionRun {
  /** What the run left behind that it should not have: processes of its group, files in its TMPDIR. */
  leaks: string[];
}

let runNumber = 0;

/** Runs the bundled action against the proxies, publishing into `<namespace>`. */
export async function publishThroughProxies(
  world: World,
  namespace: string,
  options: PublishOptions = {},
): Promise<WorldRun> {
  const sandbox = options.tmpdir ?? join(world.work, 'tmp', `${namespace}-${++runNumber}`);
  await mkdir(sandbox, { recursive: true });
  let pid = 0;
  const run = await runAction(
    {
      registry: world.registryProxy.host,
      namespace,
      version: VERSION,
      flavors: FLAVORS_YAML,
      architectures: ARCHES.join(','),
      'registry-username': CREDS.username,
      'registry-password': CREDS.password,
      'uki-builder': 'native',
      concurrency: '2',
      ...(options.anonymous ? { 'github-token': '' } : {}),
      ...options.inputs,
    },
    {
      env: { GITHUB_API_URL: world.apiUrl, TMPDIR: sandbox, ...options.env },
      context: options.anonymous ? {} : { token: GITHUB_TOKEN },
      timeoutMs: options.timeoutMs ?? 120_000,
      // Its own process group: whatever it starts (xz, QEMU) can be found after it is gone.
      processGroup: true,
      onSpawn: (child) => {
        pid = child.pid ?? 0;
        options.onSpawn?.(child);
      },
    },
  );
  const leaks: string[] = [];
  // A child killed with its parent may take a moment to be reaped.
  for (let i = 0; i < 20; i++) {
    const left = await processesInGroup(pid);
    if (left.length === 0) break;
    if (i === 19) leaks.push(...left.map((p) => `process left running: ${p}`));
    else await new Promise((r) => setTimeout(r, 100));
  }
  if (!options.killed?.()) {
    const files = await readdir(sandbox).catch(() => []);
    if (files.length > 0) leaks.push(`files left in TMPDIR: ${files.join(', ')}`);
  }
  if (options.tmpdir === undefined) await rm(sandbox, { recursive: true, force: true });
  return { ...run, leaks };
}

/** Live processes (not zombies) of process group `pgid`, as `pid command line`. */
export async function processesInGroup(pgid: number): Promise<string[]> {
  if (pgid <= 0) return [];
  const found: string[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // fields: state ppid pgrp ...
      if (Number(fields[2]) !== pgid || fields[0] === 'Z' || fields[0] === 'X') continue;
      const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0').join(' ').trim();
      found.push(`${entry} ${cmdline.slice(0, 200)}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Open file descriptors of this (the test) process: sockets or files a scenario leaks pile up here. */
export async function openFds(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}

const BASIC = `Basic ${Buffer.from(`${CREDS.username}:${CREDS.password}`).toString('base64')}`;
const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** Bearer tokens for the walker, per scope (token auth only). */
const walkerTokens = new Map<string, string>();

async function bearerFor(world: World, challenge: string): Promise<string> {
  const param = (name: string): string | undefined => new RegExp(`${name}="([^"]*)"`).exec(challenge)?.[1];
  const url = new URL(param('realm') ?? world.tokens!.realm);
  url.searchParams.set('service', param('service') ?? '');
  const scope = param('scope');
  if (scope) url.searchParams.set('scope', scope);
  const res = await fetch(url, { headers: { authorization: BASIC } });
  const body = (await res.json()) as { token?: string };
  const header = `Bearer ${body.token ?? ''}`;
  walkerTokens.set(scope ?? '', header);
  return header;
}

/** One request to the registry itself (not via the proxy), as the publisher's user. */
async function registryGet(
  world: World,
  path: string,
  method: 'GET' | 'HEAD' = 'GET',
): Promise<{ status: number; body: string }> {
  const url = `http://${world.registry.host}${path}`;
  const scopeGuess = /^\/v2\/(.+?)\/(manifests|blobs|tags)\//.exec(path)?.[1];
  let auth = world.tokens
    ? (walkerTokens.get(scopeGuess ? `repository:${scopeGuess}:pull` : 'registry:catalog:*') ?? '')
    : BASIC;
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(url, { method, headers: { authorization: auth, accept: ACCEPT } });
    const challenge = res.headers.get('www-authenticate');
    if (res.status === 401 && world.tokens && challenge && attempt < 3) {
      await res.body?.cancel();
      auth = await bearerFor(world, challenge);
      continue;
    }
    return { status: res.status, body: method === 'GET' ? await res.text() : '' };
  }
}

export interface RegistryWalk {
  /** `repo:tag` -> manifest digest, for the version's tags */
  tags: Map<string, string>;
  /** `repo:subject digest` -> the artifactTypes its referrers fallback tag (`sha256-<hex>`) lists */
  referrers: Map<string, string[]>;
  /** `repo` -> blob digest -> size, for every blob a tag reaches */
  blobs: Map<string, Map<string, number>>;
  /** What a tag names but the registry does not have. */
  missing: string[];
  /**
   * Tags the tags list shows but that resolve to nothing (404): distribution writes a tag in two steps (its
   * index link, then its `current` link), so a registry stopped between them lists a tag that names nothing.
   * Not a tag naming missing content (a client sees "not found"); a clean re-run must leave none.
   */
  dangling: string[];
}

/**
 * The invariant: for every tag under `namespace` (the version's, and the attachments' `sha256-<hex>` fallback
 * tags), the manifest and everything it references (child manifests, config, layers) exist. Walked through the
 * registry API, directly (not via the proxy).
 */
export async function walkRegistry(world: World, namespace: string): Promise<RegistryWalk> {
  const walk: RegistryWalk = {
    tags: new Map(),
    referrers: new Map(),
    blobs: new Map(),
    missing: [],
    dangling: [],
  };
  const catalog = JSON.parse((await registryGet(world, '/v2/_catalog?n=1000')).body) as {
    repositories?: string[];
  };
  const repos = (catalog.repositories ?? []).filter((r) => r.startsWith(`${namespace}/`));
  for (const repo of repos) {
    const list = await registryGet(world, `/v2/${repo}/tags/list`);
    const tags =
      list.status === 200 ? ((JSON.parse(list.body) as { tags?: string[] | null }).tags ?? []) : [];
    const blobs = new Map<string, number>();
    walk.blobs.set(repo, blobs);
    const visit = async (ref: string, from: string): Promise<string | undefined> => {
      const res = await registryGet(world, `/v2/${repo}/manifests/${ref}`);
      if (res.status === 404 && from === `${repo}:${ref}`) {
        walk.dangling.push(`${repo}:${ref}`);
        return undefined;
      }
      if (res.status !== 200) {
        walk.missing.push(`${from} -> manifest ${repo}@${ref} (HTTP ${res.status})`);
        return undefined;
      }
      const doc = JSON.parse(res.body) as {
        manifests?: { digest: string; artifactType?: string }[];
        config?: { digest: string; size: number };
        layers?: { digest: string; size: number }[];
      };
      for (const child of doc.manifests ?? []) await visit(child.digest, `${repo}@${ref}`);
      for (const blob of [...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])]) {
        const head = await registryGet(world, `/v2/${repo}/blobs/${blob.digest}`, 'HEAD');
        if (head.status !== 200)
          walk.missing.push(`${repo}@${ref} -> blob ${blob.digest} (HTTP ${head.status})`);
        else blobs.set(blob.digest, blob.size);
      }
      return `sha256:${createHash('sha256').update(res.body).digest('hex')}`;
    };
    for (const tag of tags) {
      const digest = await visit(tag, `${repo}:${tag}`);
      if (!digest) continue;
      const subject = /^sha256-([0-9a-f]{64})$/.exec(tag)?.[1];
      if (subject) {
        const index = JSON.parse((await registryGet(world, `/v2/${repo}/manifests/${tag}`)).body) as {
          manifests?: { artifactType?: string }[];
        };
        walk.referrers.set(
          `${repo}:sha256:${subject}`,
          (index.manifests ?? []).map((m) => m.artifactType ?? '').sort(),
        );
      } else walk.tags.set(`${repo}:${tag}`, digest);
    }
  }
  return walk;
}

/**
 * Bytes of `expected` blobs (repo relative to the namespace, in the order the publisher pushes to them) a re-run
 * must upload into `namespace`. A blob two repositories need (the attachments' empty config and package list)
 * crosses the wire once per run: it is pushed to the first repository that needs it (its home; uploaded only if
 * that one lacks it) and mounted into the others from there. So each distinct blob counts once, when its home
 * lacks it. (The baseline lists repositories in the catalog's sorted order, which is FLAVORS_YAML's order.)
 */
export async function missingBytes(
  world: World,
  namespace: string,
  expected: Map<string, Map<string, number>>,
): Promise<number> {
  const homes = new Map<string, { repo: string; size: number }>();
  for (const [repo, blobs] of expected)
    for (const [digest, size] of blobs) if (!homes.has(digest)) homes.set(digest, { repo, size });
  let bytes = 0;
  for (const [digest, { repo, size }] of homes) {
    const head = await registryGet(world, `/v2/${namespace}/${repo}/blobs/${digest}`, 'HEAD');
    if (head.status !== 200) bytes += size;
  }
  return bytes;
}

/** The blobs of a walk with repositories relative to the namespace (to compare across namespaces). */
export function relativeBlobs(walk: RegistryWalk, namespace: string): Map<string, Map<string, number>> {
  return new Map([...walk.blobs].map(([repo, blobs]) => [repo.slice(namespace.length + 1), blobs]));
}

export type Outcome = 'completed' | 'failed-cleanly' | 'unclean';

export interface Verdict {
  outcome: Outcome;
  /** Why a run is unclean or corrupted (empty when fine). */
  problems: string[];
  corrupted: boolean;
  /** Tags of the namespace after the run. */
  tags: number;
  /** Listed tags that resolve to nothing (see RegistryWalk.dangling). */
  dangling: string[];
}

/**
 * Judges one (possibly faulty) run: exit 0 with every tag read back by skopeo at the reported digest,
 * or exit non-zero with exactly one `::error::` line and no stack trace; and in both cases no tag of
 * the namespace names missing content, and the run left no process or file behind.
 */
export async function judge(world: World, namespace: string, run: WorldRun): Promise<Verdict> {
  const problems: string[] = [...run.leaks];
  let corrupted = false;
  const errors = run.stdout.split('\n').filter((l) => l.startsWith('::error::'));
  let outcome: Outcome;
  if (run.code === 0 && errors.length === 0) {
    outcome = 'completed';
    const digests = JSON.parse(run.outputs.digests ?? '{}') as Record<string, string>;
    const tags = (run.outputs.tags ?? '').split('\n').filter(Boolean);
    if (tags.length !== EXPECTED_TAGS) problems.push(`expected ${EXPECTED_TAGS} tags, got ${tags.length}`);
    for (const tag of tags) {
      const got = await skopeoInspectRaw(`docker://${tag}`, { creds: CREDS }).then(
        (r) => r.digest,
        (e: unknown) => `unreadable: ${(e as Error).message}`,
      );
      if (got !== digests[tag]) {
        corrupted = true;
        problems.push(`${tag}: skopeo reads ${got}, the action reported ${digests[tag]}`);
      }
    }
  } else if (run.code !== 0 && errors.length === 1 && !/\n\s+at |%0A\s+at /.test(run.stdout + run.stderr)) {
    outcome = 'failed-cleanly';
  } else {
    outcome = 'unclean';
    problems.push(
      `exit ${run.code}, ${errors.length} ::error:: lines: ${errors.join(' | ').slice(0, 600)}; stderr: ${run.stderr.slice(0, 600)}`,
    );
  }
  const walk = await walkRegistry(world, namespace);
  if (walk.missing.length > 0) {
    corrupted = true;
    problems.push(...walk.missing.map((m) => `missing: ${m}`));
  }
  if (outcome === 'completed') {
    // A completed run attached all three files to every arch image, each once.
    const digests = JSON.parse(run.outputs.digests ?? '{}') as Record<string, string>;
    for (const [ref, digest] of Object.entries(digests)) {
      if (!/-(amd64|arm64)$/.test(ref)) continue;
      const repo = ref.slice(ref.indexOf('/') + 1, ref.lastIndexOf(':'));
      const types = walk.referrers.get(`${repo}:${digest}`) ?? [];
      if (types.join() !== ATTACHMENT_TYPES.join())
        problems.push(
          `${ref}: its referrers are [${types.join(', ')}], not [${ATTACHMENT_TYPES.join(', ')}]`,
        );
    }
  }
  return { outcome, problems, corrupted, tags: walk.tags.size, dangling: walk.dangling };
}

/** `Blob bytes uploaded: N` from the job summary; 0 when nothing was pushed. */
export function bytesUploaded(run: ActionRun): number {
  const m = /Blob bytes uploaded: (\d+)/.exec(run.summary);
  return m ? Number(m[1]) : 0;
}

export interface ScenarioTally {
  scenario: string;
  runs: number;
  completed: number;
  failedCleanly: number;
  unclean: number;
  corrupted: number;
  /** Blob bytes the clean re-runs uploaded, summed. */
  reuploaded: number;
  /** Blob bytes that were missing before the re-runs, summed (the re-runs must upload exactly these). */
  missingBefore: number;
  seconds: number;
  /** Wall-clock seconds per seed: the faulty run, its checks, the re-run and its checks. */
  secondsPerRun: number;
  /** The `::error::` line of each run that failed cleanly, with its seed. */
  errors: string[];
  /** Figures of the scenario itself (how long a cancelled run took to exit, waits...). */
  figures?: Record<string, number>;
}

/** Appends a tally as a JSON line to RELIABILITY_RESULTS (for docs/RELIABILITY.md). */
export async function recordTally(tally: ScenarioTally): Promise<void> {
  const file = process.env.RELIABILITY_RESULTS;
  if (!file) return;
  const { appendFile } = await import('node:fs/promises');
  await appendFile(file, `${JSON.stringify(tally)}\n`);
}

export interface FaultyRun {
  run: WorldRun;
  /** The harness SIGKILLed the action: no message is possible; it counts as failed cleanly when not corrupted. */
  killed?: boolean;
  /** Where the fault struck, for messages. */
  point?: string;
  /** Checks of the scenario itself that failed. */
  problems?: string[];
}

export interface ScenarioSpec {
  scenario: string;
  /** Namespace prefix (lowercase, no slashes). */
  slug: string;
  /** Seeds per scenario when RELIABILITY_RUNS is not set (CI). */
  ciRuns: number;
  /** The faulty run of one seed, into `namespace`; it sets and clears its own faults. */
  faulty: (seed: number, namespace: string, rand: () => number) => Promise<FaultyRun>;
  /** Runs after the faulty run and before the clean re-run (e.g. give the disk space back). */
  between?: (seed: number) => Promise<void>;
  /** Figures summed over the runs (or their maximum, for keys starting with `max`). */
  figures?: () => Record<string, number>;
}

/**
 * The loop every scenario shares: per seed, the faulty run and its verdict, then a clean re-run that must
 * complete and upload exactly the blob bytes that were missing; the tally is recorded. Returns the problems
 * (empty when the scenario held) and the tally.
 */
export async function runScenario(
  world: World,
  spec: ScenarioSpec,
): Promise<{ problems: string[]; tally: ScenarioTally }> {
  const started = performance.now();
  const tally: ScenarioTally = {
    scenario: spec.scenario,
    runs: 0,
    completed: 0,
    failedCleanly: 0,
    unclean: 0,
    corrupted: 0,
    reuploaded: 0,
    missingBefore: 0,
    seconds: 0,
    secondsPerRun: 0,
    errors: [],
  };
  const problems: string[] = [];
  let fdsAfterFirst: number | undefined;
  let fdsMax = 0;
  for (const seed of seeds(runCount(spec.ciRuns))) {
    const namespace = `${spec.slug}-s${seed}`;
    let faulty: FaultyRun;
    try {
      faulty = await spec.faulty(seed, namespace, prng(scenarioSeed(spec.slug, seed)));
    } finally {
      clearFaults(world);
    }
    const at = `seed ${seed}${faulty.point ? ` (${faulty.point})` : ''}`;
    const verdict = await judge(world, namespace, faulty.run);
    tally.runs++;
    if (verdict.outcome === 'completed') tally.completed++;
    else if (verdict.outcome === 'failed-cleanly') {
      tally.failedCleanly++;
      tally.errors.push(
        `seed ${seed}: ${faulty.run.stdout.split('\n').find((l) => l.startsWith('::error::'))}`,
      );
    } else if (faulty.killed) tally.failedCleanly++;
    else tally.unclean++;
    if (verdict.corrupted) tally.corrupted++;
    const own = faulty.killed
      ? verdict.problems.filter((p) => p.startsWith('missing') || p.startsWith('process left'))
      : verdict.problems;
    problems.push(...own.map((p) => `${at}: ${p}`), ...(faulty.problems ?? []).map((p) => `${at}: ${p}`));

    await spec.between?.(seed);
    // A clean re-run finishes the job and uploads exactly what is missing.
    const missing = await missingBytes(world, namespace, world.baseline);
    const rerun = await publishThroughProxies(world, namespace);
    const again = await judge(world, namespace, rerun);
    if (verdict.dangling.length > 0) {
      tally.figures = {
        ...tally.figures,
        danglingTags: (tally.figures?.danglingTags ?? 0) + verdict.dangling.length,
      };
      console.log(`[reliability] ${at}: listed tags that resolve to nothing: ${verdict.dangling.join(', ')}`);
    }
    if (again.dangling.length > 0)
      problems.push(`${at} re-run left tags that resolve to nothing: ${again.dangling.join(', ')}`);
    if (again.outcome !== 'completed' || again.corrupted || again.problems.length > 0) {
      problems.push(...again.problems.map((p) => `${at} re-run: ${p}`));
      if (again.outcome !== 'completed')
        problems.push(`${at} re-run did not complete: ${rerun.stdout.slice(-800)}`);
    }
    const uploaded = bytesUploaded(rerun);
    if (uploaded !== missing)
      problems.push(`${at} re-run: uploaded ${uploaded} blob bytes, ${missing} were missing`);
    tally.reuploaded += uploaded;
    tally.missingBefore += missing;

    const fds = await openFds();
    fdsAfterFirst ??= fds;
    fdsMax = Math.max(fdsMax, fds);
  }
  // Sockets, files or child handles that pile up from run to run would show as a growing count.
  if (fdsAfterFirst !== undefined && fdsMax - fdsAfterFirst > 32) {
    problems.push(`open file descriptors grew from ${fdsAfterFirst} to ${fdsMax} over the runs`);
  }
  tally.seconds = Math.round((performance.now() - started) / 100) / 10;
  tally.secondsPerRun = tally.runs ? Math.round((tally.seconds / tally.runs) * 10) / 10 : 0;
  const figures = spec.figures?.();
  if (figures) tally.figures = { ...tally.figures, ...figures };
  await recordTally(tally);
  console.log(`[reliability] ${JSON.stringify(tally)}`);
  return { problems, tally };
}
