// The bundled action, run as GitHub runs it, against the local GitHub API stand-in serving a generated
// release and a real docker-registry; every tag read back with skopeo.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGitHubApiServer } from '../../src/sample/github-server';
import { errorLines, runAction } from '../helpers/action';
import {
  SAMPLE_PUBLISHED_AT,
  SAMPLE_VERSION as VERSION,
  startSampleEnvironment,
  type SampleEnvironment,
} from '../helpers/sample-env';
import { skopeoInspectRaw } from '../helpers/skopeo';

let world: SampleEnvironment;
beforeAll(async () => {
  world = await startSampleEnvironment();
});
afterAll(async () => {
  await world?.stop();
});

const publishInputs = (extra: Record<string, string> = {}): Record<string, string> => ({
  registry: world.registry.host,
  'uki-builder': 'native',
  ...extra,
});
const env = (): Record<string, string> => ({ GITHUB_API_URL: world.github.apiUrl });

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
    expect(tags).toContain(`${world.registry.host}/test-owner/gardenlinux/gardener:${VERSION}-kvm-arm64`);
    expect(tags).toContain(`${world.registry.host}/test-owner/gardenlinux/gardener:${VERSION}-metal`);
    expect(tags).toContain(`${world.registry.host}/test-owner/gardenlinux/capi:${VERSION}`);
    firstDigests = JSON.parse(run.outputs.digests!) as Record<string, string>;
    expect(Object.keys(firstDigests).sort()).toEqual([...tags].sort());

    // skopeo, an independent client, reads every tag back with the digest the action reported.
    for (const tag of tags) {
      const { digest } = await skopeoInspectRaw(`docker://${tag}`);
      expect(digest, tag).toBe(firstDigests[tag]);
    }
    // The combined index lists every variant/arch permutation, selectable by platform and variant.
    const combined = await skopeoInspectRaw(
      `docker://${world.registry.host}/test-owner/gardenlinux/gardener:${VERSION}`,
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
      firstDigests[`${world.registry.host}/test-owner/gardenlinux/gardener:${VERSION}-kvm-arm64`],
    );
    expect(index.annotations['org.opencontainers.image.version']).toBe(VERSION);
    expect(index.annotations['org.opencontainers.image.created']).toBe(SAMPLE_PUBLISHED_AT);

    // A metal arch image holds the four IronCore layers and the command line config.
    const metal = await skopeoInspectRaw(
      `docker://${world.registry.host}/test-owner/gardenlinux:${VERSION}-metal-amd64`,
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
    const before = world.downloads().length;
    const run = await runAction(publishInputs(), { env: env() });
    expect(run.code).toBe(0);
    expect(run.outputs.published).toBe('false');
    expect(run.outputs['skipped-reason']).toBe('already-published');
    expect(world.downloads().length).toBe(before);
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
    const ref = `${world.registry.host}/test-owner/gardenlinux/gardener:${VERSION}-kvm-arm64`;
    const digest = firstDigests[ref]!;
    const del = await fetch(
      `http://${world.registry.host}/v2/test-owner/gardenlinux/gardener/manifests/${digest}`,
      { method: 'DELETE' },
    );
    expect(del.status).toBe(202);
    await expect(skopeoInspectRaw(`docker://${ref}`)).rejects.toThrow();

    const before = world.downloads().length;
    const run = await runAction(publishInputs(), { env: env() });
    expect(errorLines(run)).toEqual([]);
    expect(run.stdout).toContain('1 arch image(s) to build: gardenlinux/gardener:kvm/arm64');
    const fetched = world.downloads().slice(before);
    expect(fetched.length).toBeGreaterThan(0);
    expect(fetched.every((p) => p.includes('kvm-gardener_prod-arm64'))).toBe(true);
    expect((await skopeoInspectRaw(`docker://${ref}`)).digest).toBe(digest);
    expect(JSON.parse(run.outputs.digests!)).toEqual(firstDigests);
  });

  it('in a dry run, downloads and builds everything and pushes nothing', async () => {
    const downloadsBefore = world.downloads().length;
    const run = await runAction(publishInputs({ namespace: 'dry', 'dry-run': 'true' }), { env: env() });
    expect(errorLines(run)).toEqual([]);
    expect(run.outputs.published).toBe('false');
    expect(run.outputs['skipped-reason']).toBe('dry-run');
    // The digests it would publish are the ones a real publication gives (the namespace is not in them).
    const normalise = (d: Record<string, string>, ns: string): Record<string, string> =>
      Object.fromEntries(Object.entries(d).map(([ref, digest]) => [ref.replace(`/${ns}/`, '/'), digest]));
    expect(normalise(JSON.parse(run.outputs.digests!), 'dry')).toEqual(normalise(firstDigests, 'test-owner'));
    expect(world.downloads().length).toBeGreaterThan(downloadsBefore);
    expect((await world.catalog()).filter((r) => r.startsWith('dry/'))).toEqual([]);
  });

  it('publishes nothing when one flavor archive is bad; a re-run with a good archive completes', async () => {
    // The same release, but the capi arm64 asset's digest does not match its bytes.
    const bad = await startGitHubApiServer({
      releases: [
        {
          tag: VERSION,
          publishedAt: SAMPLE_PUBLISHED_AT,
          assets: world.release.assets.map((a) => ({
            name: a.name,
            path: a.path,
            ...(a.name.startsWith('baremetal-capi-arm64') && !a.companion
              ? { digest: `sha256:${'0'.repeat(64)}` }
              : {}),
          })),
        },
      ],
    });
    try {
      const run = await runAction(publishInputs({ namespace: 'half' }), {
        env: { GITHUB_API_URL: bad.apiUrl },
      });
      expect(run.code).toBe(1);
      const errors = errorLines(run);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(
        /baremetal-capi-arm64.*digest mismatch|digest mismatch.*baremetal-capi-arm64/,
      );
    } finally {
      await bad.stop();
    }
    for (const image of ['gardenlinux', 'gardenlinux/gardener', 'gardenlinux/capi']) {
      const res = await fetch(`http://${world.registry.host}/v2/half/${image}/tags/list`);
      const tags = res.status === 200 ? ((await res.json()) as { tags: string[] | null }).tags : null;
      expect(tags ?? [], image).toEqual([]);
    }
    const rerun = await runAction(publishInputs({ namespace: 'half' }), { env: env() });
    expect(errorLines(rerun)).toEqual([]);
    expect(rerun.outputs.tags!.split('\n')).toHaveLength(15);
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
    [
      'a version with shell characters',
      { version: '2150.1.0;rm -rf /' },
      /invalid Garden Linux version "2150\.1\.0;rm -rf \/"/,
    ],
  ])('rejects %s with one clear error before anything is pushed', async (_name, inputs, message) => {
    const before = await world.catalog();
    const run = await runAction(publishInputs({ namespace: 'bad-input', ...inputs }), { env: env() });
    expect(run.code).toBe(1);
    const errors = errorLines(run);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(message);
    expect(run.stdout).not.toMatch(/\n\s+at /); // no stack trace
    expect(await world.catalog()).toEqual(before);
  });
});
