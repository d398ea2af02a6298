// A generated Garden Linux-like release served by the local GitHub API stand-in, plus a real
// docker-registry: the world the action and CLI tests publish in.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_FLAVORS } from '../../src/pipeline/flavors';
import { startGitHubApiServer, type GitHubApiServer } from '../../src/sample/github-server';
import { createSamplePeStub } from '../../src/sample/pe-stub';
import { generateSampleRelease, type SampleRelease } from '../../src/sample/release';
import { startRegistry, type RunningRegistry } from './registry';

export const SAMPLE_VERSION = '2150.1.0';
export const SAMPLE_PUBLISHED_AT = '2026-02-01T08:00:00Z';

export interface SampleEnvironment {
  work: string;
  release: SampleRelease;
  registry: RunningRegistry;
  github: GitHubApiServer;
  /** Paths requested from the asset download host so far. */
  downloads(): string[];
  /** Repositories in the registry. */
  catalog(): Promise<string[]>;
  stop(): Promise<void>;
}

export async function startSampleEnvironment(): Promise<SampleEnvironment> {
  const work = await mkdtemp(join(tmpdir(), 'sample-env-'));
  const release = await generateSampleRelease({
    dir: join(work, 'assets'),
    version: SAMPLE_VERSION,
    commit8: '0badcafe',
    flavors: DEFAULT_FLAVORS.map((f) => ({ asset: f.asset, kind: f.variant })),
    arches: ['amd64', 'arm64'],
    layout: 'flat',
    sparseRaw: true,
    stubs: { amd64: createSamplePeStub('amd64'), arm64: createSamplePeStub('arm64') },
    withLogs: true,
  });
  const github = await startGitHubApiServer({
    releases: [
      {
        tag: SAMPLE_VERSION,
        publishedAt: SAMPLE_PUBLISHED_AT,
        assets: release.assets.map((a) => ({ name: a.name, path: a.path })),
      },
      // A maintenance release of the older major, published later (and flagged latest): not the newest version.
      { tag: '1877.20', publishedAt: '2026-03-01T08:00:00Z', assets: [] },
      { tag: 'beta_2200.0', publishedAt: '2026-03-02T08:00:00Z', assets: [] },
    ],
    latestTag: '1877.20',
  });
  const registry = await startRegistry();
  return {
    work,
    release,
    registry,
    github,
    downloads: () => github.requests.filter((r) => r.host.startsWith('127.0.0.2')).map((r) => r.path),
    catalog: async () => {
      const res = await fetch(`http://${registry.host}/v2/_catalog?n=1000`);
      return ((await res.json()) as { repositories?: string[] }).repositories ?? [];
    },
    stop: async () => {
      await Promise.allSettled([registry.stop(), github.stop()]);
      await rm(work, { recursive: true, force: true });
    },
  };
}
