// Attachments through the bundled action, as GitHub runs it: os-release, package list and SBOM of every archive
// published as OCI referrers of its arch image, before any tag, against a real docker-registry (no referrers
// API: the fallback tag) and go-containerregistry's registry (the API), read back by skopeo and by
// go-containerregistry's remote.Referrers; re-runs, publications from before attachments, archives without an
// SBOM or with a malformed one; and the `images` and `subject-checksums` outputs.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { referrersTagFor } from '../../src/oci/referrers';
import { ARCHIVE_ATTACHMENTS_ANNOTATION, ATTACHMENT_TYPES } from '../../src/pipeline/attach';
import type { ImageReference } from '../../src/pipeline/outputs';
import { startGitHubApiServer, type GitHubApiServer } from '../../src/sample/github-server';
import { createSamplePeStub } from '../../src/sample/pe-stub';
import { generateSampleRelease, type SampleAsset, type SampleRelease } from '../../src/sample/release';
import { errorLines, runAction } from '../helpers/action';
import { ggcrReferrers, startGgcrRegistry, type RunningGgcrRegistry } from '../helpers/ggcr';
import { startRegistry, type RunningRegistry } from '../helpers/registry';
import { skopeoInspectRaw } from '../helpers/skopeo';

const PUBLISHED_AT = '2026-02-01T08:00:00Z';
const EMPTY_CONFIG = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';
const REPO = 'test-owner/gardenlinux/gardener';
const FLAVORS = [
  { asset: 'kvm-gardener_prod', kind: 'kvm' as const },
  { asset: 'baremetal-gardener_pxe', kind: 'metal' as const },
];
// What each version's archives hold: all three files; no SBOM (releases before 2150.9.0); a malformed SBOM in
// one archive; an os-release over the cap in one archive.
const VERSIONS = {
  full: '2150.1.0',
  noSbom: '2150.2.0',
  badSbom: '2150.3.0',
  bigRelease: '2150.4.0',
  old: '2150.5.0',
};

let work: string;
let releases: Record<string, SampleRelease>;
let github: GitHubApiServer;
let registry: RunningRegistry;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'attach-action-'));
  releases = {};
  for (const [name, version] of Object.entries(VERSIONS)) {
    releases[version] = await generateSampleRelease({
      dir: join(work, version),
      version,
      commit8: '0badcafe',
      flavors: FLAVORS,
      arches: ['amd64', 'arm64'],
      layout: 'flat',
      sparseRaw: true,
      stubs: { amd64: createSamplePeStub('amd64'), arm64: createSamplePeStub('arm64') },
      attachments: (base, arch) => {
        if (name === 'noSbom') return { sbom: false };
        if (name === 'badSbom' && base.startsWith('kvm') && arch === 'arm64')
          return { sbom: '{"bomFormat":"CycloneDX","specVersion":"1.6",' };
        if (name === 'bigRelease' && base.startsWith('baremetal') && arch === 'amd64')
          return { release: `ID=gardenlinux\n${'X=y\n'.repeat(20_000)}` };
        return {};
      },
    });
  }
  github = await startGitHubApiServer({
    releases: Object.values(VERSIONS).map((version) => ({
      tag: version,
      publishedAt: PUBLISHED_AT,
      assets: releases[version]!.assets.map((a) => ({ name: a.name, path: a.path })),
    })),
  });
  registry = await startRegistry();
});
afterAll(async () => {
  await Promise.allSettled([registry?.stop(), github?.stop()]);
  if (work) await rm(work, { recursive: true, force: true });
});

const inputs = (
  version: string,
  host: string,
  extra: Record<string, string> = {},
): Record<string, string> => ({
  version,
  registry: host,
  'select-flavors': 'gardenlinux/gardener:kvm,gardenlinux/gardener:metal',
  'combined-index': 'true',
  'uki-builder': 'native',
  ...extra,
});
const env = (): Record<string, string> => ({ GITHUB_API_URL: github.apiUrl });

function archives(version: string): SampleAsset[] {
  return releases[version]!.assets.filter((a) => !a.companion);
}

async function tags(host: string): Promise<string[]> {
  const res = await fetch(`http://${host}/v2/${REPO}/tags/list`);
  if (res.status === 404) return [];
  return (((await res.json()) as { tags?: string[] | null }).tags ?? []).sort();
}

interface Entry {
  digest: string;
  artifactType?: string;
  annotations?: Record<string, string>;
}

async function fallbackIndex(host: string, subject: string): Promise<Entry[]> {
  const raw = await skopeoInspectRaw(`docker://${host}/${REPO}:${referrersTagFor(subject)}`);
  return (JSON.parse(raw.bytes.toString()) as { manifests: Entry[] }).manifests;
}

function uploadedBytes(summary: string): number {
  const match = /Blob bytes uploaded: (\d+)/.exec(summary);
  if (!match) throw new Error(`no "Blob bytes uploaded" in the summary:\n${summary}`);
  return Number(match[1]);
}

const kinds = {
  sbom: ATTACHMENT_TYPES.sbom.mediaType,
  release: ATTACHMENT_TYPES['os-release'].mediaType,
  manifest: ATTACHMENT_TYPES.packages.mediaType,
} as const;

/** The digests of VERSIONS.full, as the first publication reported them. */
let digests: Record<string, string>;

describe('attachments through the action', () => {
  it('publishes every arch image with its three attachments, read back by skopeo and go-containerregistry', async () => {
    const runnerTemp = await mkdtemp(join(tmpdir(), 'runner-temp-'));
    try {
      const version = VERSIONS.full;
      const run = await runAction(inputs(version, registry.host), { env: env(), runnerTemp });
      expect(errorLines(run)).toEqual([]);
      expect(run.code).toBe(0);
      digests = JSON.parse(run.outputs.digests!) as Record<string, string>;

      const images = JSON.parse(run.outputs.images!) as ImageReference[];
      // 4 arch images, 2 variant indexes, the combined index: each with the digest `digests` names.
      expect(images.map((i) => [i.kind, i.tag, i.platform ?? '', i.variant ?? ''])).toEqual([
        ['arch', `${version}-kvm-amd64`, 'linux/amd64', 'virtualization'],
        ['arch', `${version}-kvm-arm64`, 'linux/arm64', 'virtualization'],
        ['arch', `${version}-metal-amd64`, 'linux/amd64', 'metal'],
        ['arch', `${version}-metal-arm64`, 'linux/arm64', 'metal'],
        ['variant', `${version}-kvm`, '', 'virtualization'],
        ['variant', `${version}-metal`, '', 'metal'],
        ['combined', version, '', ''],
      ]);
      for (const image of images) {
        expect(image.digest).toBe(digests[image.reference]);
        expect(image.name).toBe(`${registry.host}/${REPO}`);
        expect(image.written).toBe(true);
      }

      // subject-checksums: the file actions/attest-build-provenance takes, one line per distinct digest.
      const checksums = await readFile(run.outputs['subject-checksums']!, 'utf8');
      expect(checksums.split('\n').filter(Boolean).sort()).toEqual(
        [...new Set(images.map((i) => `${i.digest.slice(7)}  ${registry.host}/${REPO}`))].sort(),
      );
      expect(run.summary).toContain('Attachments (OCI referrers)');

      for (const archive of archives(version)) {
        const variant = archive.kind === 'kvm' ? 'kvm' : 'metal';
        const image = images.find((i) => i.tag === `${version}-${variant}-${archive.arch}`)!;
        // The fallback tag, read by skopeo: three entries with their artifactType and the manifest's annotations.
        const entries = await fallbackIndex(registry.host, image.digest);
        expect(entries.map((e) => e.artifactType).sort()).toEqual(Object.values(kinds).sort());
        expect(entries.map((e) => e.digest).sort()).toEqual(image.attachments!.map((a) => a.digest).sort());
        for (const entry of entries) {
          expect(entry.annotations?.['org.opencontainers.image.created']).toBe(PUBLISHED_AT);
          expect(entry.annotations?.[ARCHIVE_ATTACHMENTS_ANNOTATION]).toBe('sbom,os-release,packages');
          const raw = await skopeoInspectRaw(`docker://${registry.host}/${REPO}@${entry.digest}`);
          const manifest = JSON.parse(raw.bytes.toString()) as {
            artifactType: string;
            config: { mediaType: string; size: number };
            layers: {
              mediaType: string;
              digest: string;
              size: number;
              annotations: Record<string, string>;
            }[];
            subject: { digest: string };
          };
          expect(manifest.subject.digest).toBe(image.digest);
          expect(manifest.config).toMatchObject({ mediaType: 'application/vnd.oci.empty.v1+json', size: 2 });
          expect(manifest.layers).toHaveLength(1);
          const layer = manifest.layers[0]!;
          // Trivy's --sbom-sources oci takes the layer whose media type equals the artifactType.
          expect(layer.mediaType).toBe(manifest.artifactType);
          const file = (Object.keys(kinds) as (keyof typeof kinds)[]).find(
            (k) => kinds[k] === manifest.artifactType,
          )!;
          expect(layer.annotations['org.opencontainers.image.title']).toBe(`${archive.base}.${file}`);
          // The blob is the very file in the archive.
          expect(layer.digest).toBe(archive.expected![file]!.digest);
          const blob = await fetch(`http://${registry.host}/v2/${REPO}/blobs/${layer.digest}`);
          const bytes = Buffer.from(await blob.arrayBuffer());
          expect(bytes.length).toBe(archive.expected![file]!.size);
        }
        // go-containerregistry's remote.Referrers, an independent OCI 1.1 client, finds all three by type.
        const ggcr = await ggcrReferrers(`${registry.host}/${REPO}@${image.digest}`);
        expect(ggcr.manifests.map((m) => m.artifactType).sort()).toEqual(Object.values(kinds).sort());
        const sbom = await ggcrReferrers(`${registry.host}/${REPO}@${image.digest}`, {
          artifactType: kinds.sbom,
        });
        expect(sbom.manifests).toHaveLength(1);
      }
    } finally {
      await rm(runnerTemp, { recursive: true, force: true });
    }
  });

  it('a re-run adds nothing: skipped without a download, and with force zero blob bytes and no duplicate', async () => {
    const version = VERSIONS.full;
    const downloads = (): number => github.requests.filter((r) => r.host.startsWith('127.0.0.2')).length;
    const before = downloads();
    const skipped = await runAction(inputs(version, registry.host), { env: env() });
    expect(skipped.code).toBe(0);
    expect(skipped.outputs['skipped-reason']).toBe('already-published');
    expect(downloads()).toBe(before);
    expect((JSON.parse(skipped.outputs.images!) as ImageReference[]).every((i) => !i.written)).toBe(true);

    const forced = await runAction(inputs(version, registry.host, { force: 'true' }), { env: env() });
    expect(errorLines(forced)).toEqual([]);
    expect(uploadedBytes(forced.summary)).toBe(0);
    expect(JSON.parse(forced.outputs.digests!)).toEqual(digests);
    for (const [ref, digest] of Object.entries(digests)) {
      if (!/-(amd|arm)64$/.test(ref)) continue;
      const entries = await fallbackIndex(registry.host, digest);
      expect(entries).toHaveLength(3);
    }
  });

  it('a version published before attachments gets them on the next run, and nothing else', async () => {
    const version = VERSIONS.old;
    const first = await runAction(inputs(version, registry.host, { attach: 'none' }), { env: env() });
    expect(errorLines(first)).toEqual([]);
    const before = JSON.parse(first.outputs.digests!) as Record<string, string>;
    const archTags = Object.keys(before).filter((r) => /-(amd|arm)64$/.test(r));
    for (const ref of archTags) {
      const res = await fetch(
        `http://${registry.host}/v2/${REPO}/manifests/${referrersTagFor(before[ref]!)}`,
      );
      expect(res.status).toBe(404);
    }
    const tagsBefore = await tags(registry.host);

    // Exactly the attachment blobs the repository lacks go up (the package lists of earlier versions are the
    // same bytes): each distinct one once, no image blob.
    const distinct = new Map<string, number>([[EMPTY_CONFIG, 2]]);
    for (const a of archives(version))
      for (const f of ['release', 'manifest', 'sbom'] as const)
        distinct.set(a.expected![f]!.digest, a.expected![f]!.size);
    let missingBytes = 0;
    for (const [digest, size] of distinct) {
      const head = await fetch(`http://${registry.host}/v2/${REPO}/blobs/${digest}`, { method: 'HEAD' });
      if (head.status === 404) missingBytes += size;
    }
    expect(missingBytes).toBeGreaterThan(0);

    const second = await runAction(inputs(version, registry.host), { env: env() });
    expect(errorLines(second)).toEqual([]);
    expect(second.outputs.published).toBe('true');
    expect(JSON.parse(second.outputs.digests!)).toEqual(before);
    expect(second.stdout).toContain('4 published arch image(s) to attach to');
    expect(uploadedBytes(second.summary)).toBe(missingBytes);
    // The only new tags are the four fallback tags.
    const added = (await tags(registry.host)).filter((t) => !tagsBefore.includes(t));
    expect(added.sort()).toEqual(archTags.map((r) => referrersTagFor(before[r]!)).sort());
    for (const ref of archTags) expect(await fallbackIndex(registry.host, before[ref]!)).toHaveLength(3);
    // And now it is published: the next run skips.
    const third = await runAction(inputs(version, registry.host), { env: env() });
    expect(third.outputs['skipped-reason']).toBe('already-published');
  });

  it('an archive without an SBOM publishes the other two, and counts as complete on the next run', async () => {
    const version = VERSIONS.noSbom;
    const run = await runAction(inputs(version, registry.host), { env: env() });
    expect(errorLines(run)).toEqual([]);
    const images = JSON.parse(run.outputs.images!) as ImageReference[];
    for (const image of images.filter((i) => i.kind === 'arch')) {
      const entries = await fallbackIndex(registry.host, image.digest);
      expect(entries.map((e) => e.artifactType).sort()).toEqual([kinds.release, kinds.manifest].sort());
      expect(entries[0]!.annotations?.[ARCHIVE_ATTACHMENTS_ANNOTATION]).toBe('os-release,packages');
    }
    const again = await runAction(inputs(version, registry.host), { env: env() });
    expect(again.outputs['skipped-reason']).toBe('already-published');
  });

  it.each([
    [
      VERSIONS.badSbom,
      /kvm-gardener_prod-arm64-2150\.3\.0-0badcafe\.sbom is not a valid sbom file: not JSON/,
    ],
    [
      VERSIONS.bigRelease,
      /baremetal-gardener_pxe-amd64-2150\.4\.0-0badcafe\.release is 78\.1 KiB \(80015 bytes\); os-release attachments are capped at 64\.0 KiB/,
    ],
  ])(
    'a bad attachment in one archive of %s is one clear error, and no tag of the version exists',
    async (version, message) => {
      const before = await tags(registry.host);
      const run = await runAction(inputs(version, registry.host), { env: env() });
      expect(run.code).toBe(1);
      const errors = errorLines(run);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(message);
      expect(run.stdout + run.stderr).not.toMatch(/\n\s+at .*\.js:\d+/);
      const after = await tags(registry.host);
      expect(after.filter((t) => t.startsWith(version))).toEqual([]);
      expect(after.filter((t) => !before.includes(t))).toEqual([]);
    },
  );
});

describe('attachments on a registry with the referrers API (go-containerregistry)', () => {
  let ggcr: RunningGgcrRegistry;
  beforeAll(async () => {
    ggcr = await startGgcrRegistry();
  });
  afterAll(async () => {
    await ggcr?.stop();
  });

  it('uses the API, writes no fallback tag, and remote.Referrers lists all three', async () => {
    const run = await runAction(inputs(VERSIONS.full, ggcr.host), { env: env() });
    expect(errorLines(run)).toEqual([]);
    expect(run.stdout).toContain('serves the OCI referrers API');
    // The same release gives the same digests on any registry.
    expect(Object.values(JSON.parse(run.outputs.digests!) as Record<string, string>).sort()).toEqual(
      Object.values(digests).sort(),
    );
    expect((await tags(ggcr.host)).filter((t) => t.startsWith('sha256-'))).toEqual([]);
    const images = JSON.parse(run.outputs.images!) as ImageReference[];
    for (const image of images.filter((i) => i.kind === 'arch')) {
      const listed = await ggcrReferrers(`${ggcr.host}/${REPO}@${image.digest}`);
      expect(listed.manifests.map((m) => m.digest).sort()).toEqual(
        image.attachments!.map((a) => a.digest).sort(),
      );
    }
    // The API's answer is what tells a re-run it is complete.
    const again = await runAction(inputs(VERSIONS.full, ggcr.host), { env: env() });
    expect(again.outputs['skipped-reason']).toBe('already-published');
  });
});
