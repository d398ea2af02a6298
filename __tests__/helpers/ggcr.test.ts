// Proves the go-containerregistry helpers against real registries, with plain fetch (not the product code):
// an artifact manifest with a `subject` pushed to ggcr's registry (referrers API) and to Debian's
// docker-registry (no API: a hand-written `sha256-<hex>` fallback index), read back by ggcr's remote.Referrers.
// The assertions also pin what these registries do with OCI 1.1 (OCI-Subject, ETag, If-Match, filters),
// which the attachments design depends on: a new release of either changes a fact and fails here.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ggcrReferrers, startGgcrRegistry } from './ggcr';
import type { RunningGgcrRegistry } from './ggcr';
import { startRegistry } from './registry';
import type { RunningRegistry } from './registry';

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';
const EMPTY = 'application/vnd.oci.empty.v1+json';
const CYCLONEDX = 'application/vnd.cyclonedx+json';

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

const sha256 = (bytes: string | Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const describeBytes = (mediaType: string, bytes: string): Descriptor => ({
  mediaType,
  digest: sha256(bytes),
  size: Buffer.byteLength(bytes),
});

async function pushBlob(host: string, repo: string, bytes: string): Promise<void> {
  const start = await fetch(`http://${host}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expect(start.status).toBe(202);
  const location = new URL(start.headers.get('location') ?? '', `http://${host}`);
  location.searchParams.set('digest', sha256(bytes));
  const put = await fetch(location, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream' },
    body: bytes,
  });
  expect(put.status).toBe(201);
}

async function putManifest(
  host: string,
  repo: string,
  reference: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<Response> {
  const mediaType = (JSON.parse(body) as { mediaType: string }).mediaType;
  const res = await fetch(`http://${host}/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    headers: { 'content-type': mediaType, ...headers },
    body,
  });
  await res.body?.cancel();
  return res;
}

/** A subject image manifest (tag `v1`) and an SBOM artifact referring to it, with all their blobs. */
async function pushSubjectAndArtifact(host: string, repo: string) {
  const config = '{"architecture":"amd64","os":"linux"}';
  const rootfs = 'not really a rootfs';
  const sbom = '{"bomFormat":"CycloneDX","specVersion":"1.6"}';
  for (const blob of [config, rootfs, sbom, '{}']) await pushBlob(host, repo, blob);
  const subjectBody = JSON.stringify({
    schemaVersion: 2,
    mediaType: MANIFEST,
    config: describeBytes('application/vnd.oci.image.config.v1+json', config),
    layers: [describeBytes('application/vnd.oci.image.layer.v1.tar', rootfs)],
  });
  expect((await putManifest(host, repo, 'v1', subjectBody)).status).toBe(201);
  const subject = describeBytes(MANIFEST, subjectBody);
  const annotations = { 'org.opencontainers.image.created': '2026-01-02T03:04:05Z' };
  const artifactBody = JSON.stringify({
    schemaVersion: 2,
    mediaType: MANIFEST,
    artifactType: CYCLONEDX,
    config: { ...describeBytes(EMPTY, '{}'), data: 'e30=' },
    layers: [
      { ...describeBytes(CYCLONEDX, sbom), annotations: { 'org.opencontainers.image.title': 'x.sbom' } },
    ],
    subject,
    annotations,
  });
  const artifact = describeBytes(MANIFEST, artifactBody);
  const artifactPut = await putManifest(host, repo, artifact.digest, artifactBody);
  return { subject, artifact, artifactPut, annotations };
}

describe('go-containerregistry helpers against real registries', () => {
  let ggcr: RunningGgcrRegistry;
  let distribution: RunningRegistry;

  beforeAll(async () => {
    [ggcr, distribution] = await Promise.all([startGgcrRegistry(), startRegistry()]);
  });
  afterAll(async () => {
    await Promise.all([ggcr?.stop(), distribution?.stop()]);
  });

  it("ggcr's registry serves the referrers API and remote.Referrers reads it", async () => {
    const { subject, artifact, artifactPut } = await pushSubjectAndArtifact(ggcr.host, 'os/api');
    expect(artifactPut.status).toBe(201);
    expect(artifactPut.headers.get('docker-content-digest')).toBe(artifact.digest);
    // ggcr 0.14 serves the API but does not announce it on the PUT (distribution-spec 1.1 says it must).
    expect(artifactPut.headers.get('oci-subject')).toBeNull();

    const api = await fetch(
      `http://${ggcr.host}/v2/os/api/referrers/${subject.digest}?artifactType=other%2Ftype`,
    );
    expect(api.status).toBe(200);
    expect(api.headers.get('oci-filters-applied')).toBeNull(); // the filter is ignored...
    const listed = (await api.json()) as { mediaType: string; manifests: Record<string, unknown>[] };
    expect(listed.mediaType).toBe(INDEX);
    // ...and the entry carries the config's media type as its artifactType, and no annotations.
    expect(listed.manifests).toEqual([{ ...artifact, artifactType: EMPTY }]);

    const viaGgcr = await ggcrReferrers(`${ggcr.host}/os/api@${subject.digest}`);
    expect(viaGgcr.manifests).toEqual([{ ...artifact, artifactType: EMPTY }]);
    // remote.Referrers filters on the client, against what the registry said: the SBOM's type finds nothing.
    expect(
      (await ggcrReferrers(`${ggcr.host}/os/api@${subject.digest}`, { artifactType: CYCLONEDX })).manifests,
    ).toEqual([]);
    expect(ggcr.log()).toMatch(new RegExp(`GET /v2/os/api/referrers/${subject.digest}\\n`)); // no query sent

    // No fallback tag was written, and a repository the registry does not hold has no referrers API (404).
    const tags = (await (await fetch(`http://${ggcr.host}/v2/os/api/tags/list`)).json()) as {
      tags: string[];
    };
    expect(tags.tags).toEqual(['v1']);
    const unknownRepo = await fetch(`http://${ggcr.host}/v2/os/none/referrers/${subject.digest}`);
    expect(unknownRepo.status).toBe(404);
    expect(await unknownRepo.text()).toContain('NAME_UNKNOWN');
  });

  it("ggcr's registry takes a referrer's artifactType from its config: a typed config is listed right", async () => {
    const { subject } = await pushSubjectAndArtifact(ggcr.host, 'os/typed');
    const spdx = 'application/spdx+json';
    const typedBody = JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST,
      artifactType: spdx,
      config: describeBytes(spdx, '{}'),
      layers: [describeBytes(EMPTY, '{}')],
      subject,
    });
    const typed = describeBytes(MANIFEST, typedBody);
    expect((await putManifest(ggcr.host, 'os/typed', typed.digest, typedBody)).status).toBe(201);
    const reference = `${ggcr.host}/os/typed@${subject.digest}`;
    expect((await ggcrReferrers(reference, { artifactType: spdx })).manifests).toEqual([
      { ...typed, artifactType: spdx },
    ]);
    expect((await ggcrReferrers(reference)).manifests).toHaveLength(2);
  });

  it("ggcr's registry sends no ETag and ignores If-Match", async () => {
    await pushSubjectAndArtifact(ggcr.host, 'os/etag');
    const get = await fetch(`http://${ggcr.host}/v2/os/etag/manifests/v1`, { headers: { accept: MANIFEST } });
    expect(get.status).toBe(200);
    expect(get.headers.get('etag')).toBeNull();
    const body = await get.text();
    expect(
      (await putManifest(ggcr.host, 'os/etag', 'v1', body, { 'if-match': '"sha256:stale"' })).status,
    ).toBe(201);
  });

  it("Debian's docker-registry has no referrers API; remote.Referrers reads a hand-written fallback index", async () => {
    const { subject, artifact, artifactPut, annotations } = await pushSubjectAndArtifact(
      distribution.host,
      'os/tag',
    );
    // distribution 2.8 stores the artifact (subject, artifactType, empty config) but knows nothing of referrers.
    expect(artifactPut.status).toBe(201);
    expect(artifactPut.headers.get('oci-subject')).toBeNull();
    const api = await fetch(`http://${distribution.host}/v2/os/tag/referrers/${subject.digest}`);
    expect(api.status).toBe(404);
    expect(await api.text()).toBe('404 page not found\n'); // the router's page, not an OCI error body
    const stored = await fetch(`http://${distribution.host}/v2/os/tag/manifests/${artifact.digest}`, {
      headers: { accept: MANIFEST },
    });
    expect(sha256(Buffer.from(await stored.arrayBuffer()))).toBe(artifact.digest);

    // ggcr 0.14 treats a missing fallback tag as an error, not as "no referrers".
    const reference = `${distribution.host}/os/tag@${subject.digest}`;
    await expect(ggcrReferrers(reference)).rejects.toThrow(/MANIFEST_UNKNOWN/);

    const fallbackTag = subject.digest.replace(':', '-');
    const entry = { ...artifact, artifactType: CYCLONEDX, annotations };
    const index = JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [entry] });
    expect((await putManifest(distribution.host, 'os/tag', fallbackTag, index)).status).toBe(201);

    expect((await ggcrReferrers(reference)).manifests).toEqual([entry]);
    // On the fallback path too, the artifactType filter is applied by the client.
    expect((await ggcrReferrers(reference, { artifactType: CYCLONEDX })).manifests).toEqual([entry]);
    expect((await ggcrReferrers(reference, { artifactType: 'application/spdx+json' })).manifests).toEqual([]);
  });

  it("Debian's docker-registry sends an ETag but ignores If-Match: a stale writer still replaces the index", async () => {
    const { subject, artifact } = await pushSubjectAndArtifact(distribution.host, 'os/race');
    const fallbackTag = subject.digest.replace(':', '-');
    const first = JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [] });
    expect((await putManifest(distribution.host, 'os/race', fallbackTag, first)).status).toBe(201);
    const url = `http://${distribution.host}/v2/os/race/manifests/${fallbackTag}`;
    const get = await fetch(url, { headers: { accept: INDEX } });
    await get.body?.cancel();
    expect(get.headers.get('etag')).toBe(`"${sha256(first)}"`);
    const head = await fetch(url, { method: 'HEAD', headers: { accept: INDEX } });
    expect(head.headers.get('etag')).toBe(`"${sha256(first)}"`);
    const conditional = await fetch(url, {
      headers: { accept: INDEX, 'if-none-match': `"${sha256(first)}"` },
    });
    expect(conditional.status).toBe(304);

    const second = JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [artifact] });
    const stale = await putManifest(distribution.host, 'os/race', fallbackTag, second, {
      'if-match': '"sha256:0000000000000000000000000000000000000000000000000000000000000000"',
    });
    expect(stale.status).toBe(201);
    const now = await fetch(url, { headers: { accept: INDEX } });
    expect(await now.text()).toBe(second);
  });

  it('ggcrReferrers passes Basic credentials and reports failures with their cause', async () => {
    const creds = { username: 'alice', password: 'ggcr-secret-pw' };
    const guarded = await startRegistry({ htpasswd: creds });
    try {
      const subject = sha256('no such manifest');
      const empty = JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [] });
      const put = await fetch(`http://${guarded.host}/v2/os/auth/manifests/${subject.replace(':', '-')}`, {
        method: 'PUT',
        headers: {
          'content-type': INDEX,
          authorization: `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`,
        },
        body: empty,
      });
      expect(put.status).toBe(201);
      const reference = `${guarded.host}/os/auth@${subject}`;
      expect(await ggcrReferrers(reference, { creds })).toMatchObject({ schemaVersion: 2, manifests: [] });
      await expect(ggcrReferrers(reference)).rejects.toThrow(/UNAUTHORIZED/);
      await expect(ggcrReferrers(reference, { creds: { ...creds, password: 'wrong' } })).rejects.toThrow(
        /UNAUTHORIZED/,
      );
    } finally {
      await guarded.stop();
    }
    await expect(ggcrReferrers(`${ggcr.host}/os/api:v1`)).rejects.toThrow(/is not REGISTRY\/REPO@sha256:HEX/);
  });

  it('startGgcrRegistry stops its process for good', async () => {
    const extra = await startGgcrRegistry();
    const v2 = await fetch(`http://${extra.host}/v2/`);
    expect(v2.status).toBe(200);
    const pid = extra.pid;
    expect(pid).toBeTypeOf('number');
    await extra.stop();
    expect(() => process.kill(pid as number, 0)).toThrow(/ESRCH/);
    await expect(fetch(`http://${extra.host}/v2/`)).rejects.toThrow();
  });
});
