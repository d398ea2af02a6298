// The bundled action, run as GitHub runs it, against the local GitHub API stand-in serving a generated
// release and a real docker-registry; every tag read back with skopeo.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGitHubApiServer, type GitHubApiServer } from '../../src/sample/github-server';
import { createSamplePeStub } from '../../src/sample/pe-stub';
import { generateSampleRelease } from '../../src/sample/release';
import { DEFAULT_FLAVORS } from '../../src/pipeline/flavors';
import { errorLines, runAction } from '../helpers/action';
import { startRegistry, type RunningRegistry } from '../helpers/registry';
import { skopeoInspectRaw } from '../helpers/skopeo';

const VERSION = '2150.1.0';
let work: string;
let registry: RunningRegistry;
let github: GitHubApiServer;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'e2e-'));
  const release = await generateSampleRelease({
    dir: join(work, 'assets'),
    version: VERSION,
    commit8: '0badcafe',
    flavors: DEFAULT_FLAVORS.map((f) => ({ asset: f.asset, kind: f.variant })),
    arches: ['amd64', 'arm64'],
    layout: 'flat',
    sparseRaw: true,
    stubs: { amd64: createSamplePeStub('amd64'), arm64: createSamplePeStub('arm64') },
    withLogs: true,
  });
  github = await startGitHubApiServer({
    releases: [
      {
        tag: VERSION,
        publishedAt: '2026-02-01T08:00:00Z',
        assets: release.assets.map((a) => ({ name: a.name, path: a.path })),
      },
      // A maintenance release of the older major, published later: not the newest version.
      { tag: '1877.20', publishedAt: '2026-03-01T08:00:00Z', assets: [] },
      { tag: 'beta_2200.0', publishedAt: '2026-03-02T08:00:00Z', assets: [] },
    ],
    latestTag: '1877.20',
  });
  registry = await startRegistry();
});

afterAll(async () => {
  await Promise.allSettled([registry?.stop(), github?.stop()]);
  await rm(work, { recursive: true, force: true });
});

function publishInputs(extra: Record<string, string> = {}): Record<string, string> {
  return { registry: registry.host, 'uki-builder': 'native', ...extra };
}
const env = (): Record<string, string> => ({ GITHUB_API_URL: github.apiUrl });
const downloads = (): number => github.requests.filter((r) => r.host.startsWith('127.0.0.2')).length;

async function catalog(): Promise<string[]> {
  const res = await fetch(`http://${registry.host}/v2/_catalog?n=1000`);
  return ((await res.json()) as { repositories?: string[] }).repositories ?? [];
}

describe('the action, end to end', () => {
  let firstDigests: Record<string, string>;

  it('publishes the four default flavors for two arches with all three tag forms', async () => {
    const run = await runAction(publishInputs(), { env: env() });
    expect(errorLines(run)).toEqual([]);
    expect(run.code).toBe(0);
    expect(run.outputs.version).toBe(VERSION);
    expect(run.outputs.published).toBe('true');
    const tags = run.outputs.tags!.split('\n');
    // 8 arch images + 4 variant indexes + 3 combined indexes; the owner is lowercased.
    expect(tags).toHaveLength(15);
    expect(tags).toContain(`${registry.host}/test-owner/gardenlinux/gardener:${VERSION}-kvm-arm64`);
    expect(tags).toContain(`${registry.host}/test-owner/gardenlinux/gardener:${VERSION}-metal`);
    expect(tags).toContain(`${registry.host}/test-owner/gardenlinux/capi:${VERSION}`);
    firstDigests = JSON.parse(run.outputs.digests!) as Record<string, string>;
    expect(Object.keys(firstDigests).sort()).toEqual([...tags].sort());

    // skopeo, an independent client, reads every tag back with the digest the action reported.
    for (const tag of tags) {
      const { digest } = await skopeoInspectRaw(`docker://${tag}`);
      expect(digest, tag).toBe(firstDigests[tag]);
    }
    // The combined index lists every variant/arch permutation, selectable by platform and variant.
    const combined = await skopeoInspectRaw(
      `docker://${registry.host}/test-owner/gardenlinux/gardener:${VERSION}`,
    );
    const index = JSON.parse(combined.bytes.toString()) as {
      manifests: {
        digest: string;
        platform: { architecture: string; os: string };
        annotations: Record<string, string>;
      }[];
      annotations: Record<string, string>;
    };
    expect(
      index.manifests
        .map((m) => `${m.annotations.variant}/${m.platform.architecture}/${m.platform.os}`)
        .sort(),
    ).toEqual([
      'metal/amd64/linux',
      'metal/arm64/linux',
      'virtualization/amd64/linux',
      'virtualization/arm64/linux',
    ]);
    const kvmArm = index.manifests.find(
      (m) => m.annotations.variant === 'virtualization' && m.platform.architecture === 'arm64',
    );
    expect(kvmArm?.digest).toBe(
      firstDigests[`${registry.host}/test-owner/gardenlinux/gardener:${VERSION}-kvm-arm64`],
    );
    expect(index.annotations['org.opencontainers.image.version']).toBe(VERSION);
    expect(index.annotations['org.opencontainers.image.created']).toBe('2026-02-01T08:00:00Z');

    // A metal arch image holds the four IronCore layers and the command line config.
    const metal = await skopeoInspectRaw(
      `docker://${registry.host}/test-owner/gardenlinux:${VERSION}-metal-amd64`,
    );
    const manifest = JSON.parse(metal.bytes.toString()) as {
      config: { mediaType: string };
      layers: { mediaType: string }[];
    };
    expect(manifest.config.mediaType).toBe('application/vnd.ironcore.image.config.v1+json');
    expect(manifest.layers.map((l) => l.mediaType.split('.').pop())).toEqual([
      'squashfs',
      'initramfs',
      'kernel',
      'uki',
    ]);
    expect(run.summary).toContain('<table>');
    expect(run.summary).toContain(`gardenlinux/capi:${VERSION}-metal-arm64`);
  });

  it('skips a published version without downloading anything', async () => {
    const before = downloads();
    const run = await runAction(publishInputs(), { env: env() });
    expect(run.code).toBe(0);
    expect(run.outputs.published).toBe('false');
    expect(run.outputs['skipped-reason']).toBe('already-published');
    expect(downloads()).toBe(before);
    expect(JSON.parse(run.outputs.digests!)).toEqual(firstDigests);
  });

  it('with force, publishes again with zero blob bytes uploaded and the same digests', async () => {
    const run = await runAction(publishInputs({ force: 'true' }), { env: env() });
    expect(errorLines(run)).toEqual([]);
    expect(run.outputs.published).toBe('true');
    expect(run.summary).toContain('Blob bytes uploaded: 0');
    expect(JSON.parse(run.outputs.digests!)).toEqual(firstDigests);
  });

  it('after one arch tag is deleted, republishes exactly that image', async () => {
    const ref = `${registry.host}/test-owner/gardenlinux/gardener:${VERSION}-kvm-arm64`;
    const digest = firstDigests[ref]!;
    const del = await fetch(
      `http://${registry.host}/v2/test-owner/gardenlinux/gardener/manifests/${digest}`,
      { method: 'DELETE' },
    );
    expect(del.status).toBe(202);
    await expect(skopeoInspectRaw(`docker://${ref}`)).rejects.toThrow();

    const assetDownloads = (): string[] =>
      github.requests.filter((r) => r.host.startsWith('127.0.0.2')).map((r) => r.path);
    const before = assetDownloads().length;
    const run = await runAction(publishInputs(), { env: env() });
    expect(errorLines(run)).toEqual([]);
    expect(run.stdout).toContain('1 arch image(s) to build: gardenlinux/gardener:kvm/arm64');
    const fetched = assetDownloads().slice(before);
    expect(fetched.length).toBeGreaterThan(0);
    expect(fetched.every((p) => p.includes('kvm-gardener_prod-arm64'))).toBe(true);
    expect((await skopeoInspectRaw(`docker://${ref}`)).digest).toBe(digest);
    expect(JSON.parse(run.outputs.digests!)).toEqual(firstDigests);
  });

  it.each([
    [
      'an unknown flavor key',
      { flavors: '- {image: gl, variant: metal, asset: baremetal_pxe, colour: red}' },
      /unknown key "colour"/,
    ],
    [
      'an image name with uppercase',
      { flavors: '- {image: GardenLinux, variant: metal, asset: baremetal_pxe}' },
      /invalid repository name "GardenLinux"/,
    ],
    [
      'an image name with invalid characters',
      { flavors: '- {image: "garden linux", variant: metal, asset: baremetal_pxe}' },
      /invalid repository name "garden linux"/,
    ],
    ['an architecture other than amd64/arm64', { architectures: 'amd64,s390x' }, /"s390x" is not supported/],
    ['an empty flavor list', { flavors: '[]' }, /the list is empty/],
    ['a version with shell characters', { version: '2150.1.0;rm -rf /' }, /is not a Garden Linux version/],
  ])('rejects %s with one clear error before anything is pushed', async (_name, inputs, message) => {
    const before = await catalog();
    const run = await runAction(publishInputs({ namespace: 'bad-input', ...inputs }), { env: env() });
    expect(run.code).toBe(1);
    const errors = errorLines(run);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(message);
    expect(run.stdout).not.toMatch(/\n\s+at /); // no stack trace
    expect(await catalog()).toEqual(before);
  });
});
