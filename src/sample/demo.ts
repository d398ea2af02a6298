// `npm start`: the whole pipeline, offline. A small Garden Linux-like release (the four default
// flavors, amd64 and arm64) is generated, served by a local stand-in for GitHub's releases API, and
// published into an OCI layout folder, exactly as the action would publish a real release.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_FLAVORS } from '../pipeline/flavors';
import { runPublish, type RunResult } from '../pipeline/run';
import type { Logger } from '../util/logger';
import { startGitHubApiServer } from './github-server';
import { createSamplePeStub } from './pe-stub';
import { generateSampleRelease } from './release';

export const DEMO_VERSION = '2150.1.0';
const DEMO_COMMIT = 'c0ffee42';
/** Fixed, so the demo's digests are the same on every run and machine. */
const DEMO_PUBLISHED_AT = '2026-01-15T10:00:00Z';

export async function runDemo(options: {
  out: string;
  logger: Logger;
  signal?: AbortSignal;
}): Promise<RunResult> {
  const { logger } = options;
  const work = await mkdtemp(join(tmpdir(), 'ironcore-demo-'));
  try {
    const release = await logger.group('Generate the sample release', async () => {
      const generated = await generateSampleRelease({
        dir: join(work, 'assets'),
        version: DEMO_VERSION,
        commit8: DEMO_COMMIT,
        flavors: DEFAULT_FLAVORS.map((f) => ({ asset: f.asset, kind: f.variant })),
        arches: ['amd64', 'arm64'],
        layout: 'folder',
        stubs: { amd64: createSamplePeStub('amd64'), arm64: createSamplePeStub('arm64') },
        withLogs: true,
      });
      logger.info(
        `${generated.assets.length} assets of Garden Linux ${DEMO_VERSION} (sample) in ${join(work, 'assets')}`,
      );
      return generated;
    });
    const server = await startGitHubApiServer({
      releases: [
        {
          tag: DEMO_VERSION,
          name: `${DEMO_VERSION} (sample)`,
          publishedAt: DEMO_PUBLISHED_AT,
          assets: release.assets.map((a) => ({ name: a.name, path: a.path })),
        },
      ],
    });
    try {
      return await runPublish(
        {
          version: '',
          sourceRepository: 'gardenlinux/gardenlinux',
          apiUrl: server.apiUrl,
          registry: '',
          namespace: '',
          insecureRegistry: false,
          flavors: DEFAULT_FLAVORS.map((f) => ({ ...f })),
          selectFlavors: [],
          architectures: ['amd64', 'arm64'],
          force: false,
          dryRun: false,
          assembleOnly: false,
          ociLayout: options.out,
          concurrency: 4,
          // The sample kernel is placeholder bytes, which ukify refuses to scrape a version from; the
          // native builder needs nothing outside Node, so the demo runs on any machine.
          ukiBuilder: 'native',
          installUkify: false,
          bootTest: 'none',
          bootTestAccel: 'auto',
          installQemu: false,
          tagSuffix: '',
          annotations: {},
          workDir: join(work, 'build'),
        },
        logger,
        options.signal ? { signal: options.signal } : {},
      );
    } finally {
      await server.stop();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
