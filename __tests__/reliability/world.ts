// The world a reliability scenario runs in: a generated release served by the GitHub API stand-in, a
// real docker-registry with Basic auth, and three fault-injecting proxies (the proxy of the registry
// fault tests): in front of the registry, of the API (127.0.0.1) and of the download host (127.0.0.2).
// The action only ever talks to the proxies. Every run publishes into its own namespace, so runs are
// independent and the registry can be walked per run.
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGitHubApiServer, type FakeRelease, type GitHubApiServer } from '../../src/sample/github-server';
import { createSamplePeStub } from '../../src/sample/pe-stub';
import { generateSampleRelease } from '../../src/sample/release';
import { runAction, type ActionRun } from '../helpers/action';
import { startRegistry, type RunningRegistry } from '../helpers/registry';
import { skopeoInspectRaw } from '../helpers/skopeo';
import { startProxy, type RunningProxy } from '../oci/registry/proxy';

export const VERSION = '2150.1.0';
export const CREDS = { username: 'publisher', password: 'Reg1stry-Pa55word-7f3c9e' };
export const GITHUB_TOKEN = 'ghs_SecretActionToken0123456789abcdef';

/** Two flavors in two repositories, one arch: 6 tags (2 arch images, 2 variant indexes, 2 combined). */
export const FLAVORS_YAML = [
  '- {image: gardenlinux, variant: metal, asset: baremetal_pxe}',
  '- {image: gardenlinux/gardener, variant: kvm, asset: kvm-gardener_prod}',
].join('\n');

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

export interface World {
  work: string;
  registry: RunningRegistry;
  github: GitHubApiServer;
  registryProxy: RunningProxy;
  apiProxy: RunningProxy;
  downloadProxy: RunningProxy;
  apiUrl: string;
  stop(): Promise<void>;
}

export async function startWorld(extraReleases: FakeRelease[] = []): Promise<World> {
  const work = await mkdtemp(join(tmpdir(), 'reliability-'));
  const release = await generateSampleRelease({
    dir: join(work, 'assets'),
    version: VERSION,
    commit8: '0badcafe',
    flavors: [
      { asset: 'baremetal_pxe', kind: 'metal' },
      { asset: 'kvm-gardener_prod', kind: 'kvm' },
    ],
    arches: ['amd64'],
    layout: 'flat',
    sparseRaw: true,
    stubs: { amd64: createSamplePeStub('amd64') },
    withLogs: true,
  });
  const [registry, github] = await Promise.all([
    startRegistry({ htpasswd: CREDS }),
    startGitHubApiServer({
      releases: [
        {
          tag: VERSION,
          publishedAt: '2026-02-01T08:00:00Z',
          assets: release.assets.map((a) => ({ name: a.name, path: a.path })),
        },
        ...extraReleases,
      ],
      token: GITHUB_TOKEN,
    }),
  ]);
  const registryProxy = await startProxy(registry.host);
  const apiProxy = await startProxy(new URL(github.apiUrl).host);
  const downloadProxy = await startProxy(new URL(github.downloadUrl).host, '127.0.0.2');
  const apiUrl = `http://${apiProxy.host}`;
  apiProxy.rewrite = [
    [github.apiUrl, apiUrl],
    [github.downloadUrl, `http://${downloadProxy.host}`],
  ];
  return {
    work,
    registry,
    github,
    registryProxy,
    apiProxy,
    downloadProxy,
    apiUrl,
    stop: async () => {
      await Promise.allSettled([registryProxy.stop(), apiProxy.stop(), downloadProxy.stop()]);
      await Promise.allSettled([registry.stop(), github.stop()]);
      await rm(work, { recursive: true, force: true });
    },
  };
}

export function clearFaults(world: World): void {
  for (const p of [world.registryProxy, world.apiProxy, world.downloadProxy]) p.hook = undefined;
}

export interface PublishOptions {
  inputs?: Record<string, string>;
  onSpawn?: (child: ChildProcess) => void;
  timeoutMs?: number;
  env?: Record<string, string>;
}

/** Runs the bundled action against the proxies, publishing into `<namespace>`. */
export function publishThroughProxies(
  world: World,
  namespace: string,
  options: PublishOptions = {},
): Promise<ActionRun> {
  return runAction(
    {
      registry: world.registryProxy.host,
      namespace,
      version: VERSION,
      flavors: FLAVORS_YAML,
      architectures: 'amd64',
      'registry-username': CREDS.username,
      'registry-password': CREDS.password,
      'uki-builder': 'native',
      concurrency: '2',
      ...options.inputs,
    },
    {
      env: { GITHUB_API_URL: world.apiUrl, ...options.env },
      context: { token: GITHUB_TOKEN },
      timeoutMs: options.timeoutMs ?? 90_000,
      ...(options.onSpawn ? { onSpawn: options.onSpawn } : {}),
    },
  );
}

const AUTH = `Basic ${Buffer.from(`${CREDS.username}:${CREDS.password}`).toString('base64')}`;
const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

async function registryGet(
  world: World,
  path: string,
  method: 'GET' | 'HEAD' = 'GET',
): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://${world.registry.host}${path}`, {
    method,
    headers: { authorization: AUTH, accept: ACCEPT },
  });
  return { status: res.status, body: method === 'GET' ? await res.text() : '' };
}

export interface RegistryWalk {
  /** `repo:tag` -> manifest digest */
  tags: Map<string, string>;
  /** `repo` -> blob digest -> size, for every blob a tag reaches */
  blobs: Map<string, Map<string, number>>;
  /** What a tag names but the registry does not have. */
  missing: string[];
}

/**
 * The invariant: for every tag under `namespace`, the manifest and everything it references (child
 * manifests, config, layers) exist. Walked through the registry API, directly (not via the proxy).
 */
export async function walkRegistry(world: World, namespace: string): Promise<RegistryWalk> {
  const walk: RegistryWalk = { tags: new Map(), blobs: new Map(), missing: [] };
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
      if (res.status !== 200) {
        walk.missing.push(`${from} -> manifest ${repo}@${ref} (HTTP ${res.status})`);
        return undefined;
      }
      const doc = JSON.parse(res.body) as {
        manifests?: { digest: string }[];
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
      if (digest) walk.tags.set(`${repo}:${tag}`, digest);
    }
  }
  return walk;
}

/** Bytes of `expected` blobs (repo relative to the namespace) not in the registry under `namespace`. */
export async function missingBytes(
  world: World,
  namespace: string,
  expected: Map<string, Map<string, number>>,
): Promise<number> {
  let bytes = 0;
  for (const [repo, blobs] of expected) {
    for (const [digest, size] of blobs) {
      const head = await registryGet(world, `/v2/${namespace}/${repo}/blobs/${digest}`, 'HEAD');
      if (head.status !== 200) bytes += size;
    }
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
}

/**
 * Judges one (possibly faulty) run: exit 0 with every tag read back by skopeo at the reported digest,
 * or exit non-zero with exactly one `::error::` line and no stack trace; and in both cases no tag of
 * the namespace names missing content.
 */
export async function judge(world: World, namespace: string, run: ActionRun): Promise<Verdict> {
  const problems: string[] = [];
  let corrupted = false;
  const errors = run.stdout.split('\n').filter((l) => l.startsWith('::error::'));
  let outcome: Outcome;
  if (run.code === 0 && errors.length === 0) {
    outcome = 'completed';
    const digests = JSON.parse(run.outputs.digests ?? '{}') as Record<string, string>;
    const tags = (run.outputs.tags ?? '').split('\n').filter(Boolean);
    if (tags.length !== 6) problems.push(`expected 6 tags, got ${tags.length}`);
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
  } else if (run.code !== 0 && errors.length === 1 && !/\n\s+at /.test(run.stdout + run.stderr)) {
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
  return { outcome, problems, corrupted };
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
  /** The `::error::` line of each run that failed cleanly, with its seed. */
  errors: string[];
}

/** Appends a tally as a JSON line to RELIABILITY_RESULTS (for docs/RELIABILITY.md). */
export async function recordTally(tally: ScenarioTally): Promise<void> {
  const file = process.env.RELIABILITY_RESULTS;
  if (!file) return;
  const { appendFile } = await import('node:fs/promises');
  await appendFile(file, `${JSON.stringify(tally)}\n`);
}
