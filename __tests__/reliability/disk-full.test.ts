// A full disk: the bundled action's work folder (its TMPDIR) on a small tmpfs. First a release whose squashfs
// needs 48 MiB on 32 MiB: one clear error naming the folder and the sizes, no stack trace, nothing left on the
// tmpfs, no tag; a re-run with space publishes. Then the fault suite's scenario: the publication of the other
// scenarios with a tmpfs of a seeded size (so the disk fills at a seeded point, or not at all), and the
// invariant of every scenario. (Needs root for the mounts, as CI and the sessions have.)
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGitHubApiServer, type GitHubApiServer } from '../../src/sample/github-server';
import { createSamplePeStub } from '../../src/sample/pe-stub';
import { generateSampleRelease } from '../../src/sample/release';
import { errorLines, runAction } from '../helpers/action';
import { startRegistry, type RunningRegistry } from '../helpers/registry';
import { publishThroughProxies, runScenario, scenarioTimeout, startWorld, type World } from './world';

const VERSION = '2150.1.0';
let work: string;
let small: string;
let registry: RunningRegistry;
let github: GitHubApiServer;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'disk-full-'));
  small = join(work, 'small');
  execFileSync('mkdir', ['-p', small]);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=32m', 'tmpfs', small]);
  const release = await generateSampleRelease({
    dir: join(work, 'assets'),
    version: VERSION,
    commit8: '0d15cf11',
    flavors: [{ asset: 'baremetal_pxe', kind: 'metal' }],
    arches: ['amd64'],
    layout: 'flat',
    sizes: { squashfs: 48 * 1024 * 1024, entropy: 1 },
    stubs: { amd64: createSamplePeStub('amd64') },
  });
  [registry, github] = await Promise.all([
    startRegistry(),
    startGitHubApiServer({
      releases: [
        {
          tag: VERSION,
          publishedAt: '2026-02-01T08:00:00Z',
          assets: release.assets.map((a) => ({ name: a.name, path: a.path })),
        },
      ],
    }),
  ]);
}, 300_000);
afterAll(async () => {
  await Promise.allSettled([registry?.stop(), github?.stop()]);
  try {
    execFileSync('umount', [small]);
  } catch {
    // not mounted
  }
  await rm(work, { recursive: true, force: true });
});

const inputs = {
  version: VERSION,
  'uki-builder': 'native',
  architectures: 'amd64',
  'select-flavors': 'gardenlinux:metal',
};

describe('a full disk', () => {
  it('ends in one error naming the folder and the sizes, leaves nothing behind, and a re-run with space publishes', async () => {
    const full = await runAction(
      { ...inputs, registry: registry.host },
      { env: { GITHUB_API_URL: github.apiUrl, TMPDIR: small } },
    );
    expect(full.code).not.toBe(0);
    const errors = errorLines(full).join('\n');
    expect(errors).toMatch(
      new RegExp(
        `no space left in ${small}/ironcore-publish-[^:]+: writing root\\.squashfs stopped after [0-9.]+ MiB of the 48\\.0 MiB it needs; its partial file was removed`,
      ),
    );
    expect(errors).toContain('give a work folder on a larger disk');
    expect(errors).not.toMatch(/%0A\s+at /);
    expect(await readdir(small)).toEqual([]);
    const tags = await fetch(`http://${registry.host}/v2/test-owner/gardenlinux/tags/list`);
    expect(tags.status === 404 || ((await tags.json()) as { tags?: string[] | null }).tags == null).toBe(
      true,
    );

    const rerun = await runAction(
      { ...inputs, registry: registry.host },
      { env: { GITHUB_API_URL: github.apiUrl } },
    );
    expect(errorLines(rerun)).toEqual([]);
    expect(rerun.code).toBe(0);
    expect(rerun.outputs.tags!.split('\n')).toContain(
      `${registry.host}/test-owner/gardenlinux:${VERSION}-metal-amd64`,
    );
  });
});

describe('a full disk at a seeded point of a publication', () => {
  const CI_RUNS = 2;
  let world: World;
  const figures = { minMiBCompleted: Infinity, maxMiBFailed: 0 };

  beforeAll(async () => {
    world = await startWorld();
  }, 180_000);
  afterAll(async () => {
    await world?.stop();
  });

  it(
    'fails with one error about the disk or completes; every tag names complete content; the re-run uploads exactly what is missing',
    async () => {
      const { problems, tally } = await runScenario(world, {
        scenario: 'full disk (work folder on a tmpfs of a seeded size)',
        slug: 'diskfull',
        ciRuns: CI_RUNS,
        faulty: async (seed, namespace, rand) => {
          // 256 KiB to 32 MiB, even on a log scale: a publication of this release needs a few MiB at its peak.
          const kib = Math.round(256 * 2 ** (rand() * 7));
          const dir = join(world.work, `tmpfs-${seed}`);
          await mkdir(dir, { recursive: true });
          execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k`, 'tmpfs', dir]);
          try {
            const run = await publishThroughProxies(world, namespace, { tmpdir: dir });
            const error = run.stdout.split('\n').find((l) => l.startsWith('::error::')) ?? '';
            const own: string[] = [];
            if (run.code === 0) figures.minMiBCompleted = Math.min(figures.minMiBCompleted, kib / 1024);
            else {
              figures.maxMiBFailed = Math.max(figures.maxMiBFailed, kib / 1024);
              // The only fault is the disk: any other failure is a wrong diagnosis.
              if (!/no space left/.test(error)) own.push(`failed for another reason than the disk: ${error}`);
            }
            return { run, point: `tmpfs of ${kib} KiB`, problems: own };
          } finally {
            execFileSync('umount', [dir]);
            await rm(dir, { recursive: true, force: true });
          }
        },
        figures: () => ({
          minMiBCompleted: Number.isFinite(figures.minMiBCompleted) ? figures.minMiBCompleted : -1,
          maxMiBFailed: figures.maxMiBFailed,
        }),
      });
      expect(problems).toEqual([]);
      expect(tally.corrupted).toBe(0);
      expect(tally.unclean).toBe(0);
    },
    scenarioTimeout(CI_RUNS, 40),
  );
});
