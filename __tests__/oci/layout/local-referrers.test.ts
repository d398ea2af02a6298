// The toolkit's local store keeps referrers as untagged index.json entries; deleting the image they describe
// deletes them too, with their blobs (they would otherwise keep a dead image's SBOM forever).
import { readdir, readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesBlob } from '../../../src/oci/blob';
import { LocalStore } from '../../../src/oci/layout/local';
import { buildArtifact } from '../../../src/oci/referrers';
import { parseReference } from '../../../src/oci/reference';
import { descriptorOf } from '../../../src/oci/types';
import { makeTestImage, type TestImage } from '../registry/fixtures';

let root: string;
let image: TestImage;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'local-referrers-'));
  image = await makeTestImage(4096);
});
afterAll(async () => {
  await image?.cleanup();
  await rm(root, { recursive: true, force: true });
});

async function blobCount(): Promise<number> {
  return (await readdir(join(root, 'blobs', 'sha256'))).length;
}

describe('referrers in the local store', () => {
  it('delete removes the referrers of what it deleted, and their blobs; others stay', async () => {
    const store = await LocalStore.open(root);
    const keep = parseReference('ghcr.io/test/os:keep');
    const drop = parseReference('ghcr.io/test/os:drop');
    const repo = store.repository(keep);
    for (const blob of image.blobs) await repo.pushBlob(blob);
    const [amd, arm] = image.arches;
    await repo.pushManifest(amd!.manifest, ['keep']);
    await store.repository(drop).pushManifest(arm!.manifest, ['drop']);
    const attach = async (subject: typeof amd, text: string): Promise<string> => {
      const artifact = buildArtifact({
        artifactType: 'application/vnd.cyclonedx+json',
        layerMediaType: 'application/vnd.cyclonedx+json',
        file: bytesBlob(new TextEncoder().encode(text)),
        title: `${text}.sbom`,
        subject: descriptorOf(subject!.manifest),
      });
      for (const blob of artifact.blobs) await repo.pushBlob(blob);
      await repo.pushReferrers(descriptorOf(subject!.manifest), [artifact.manifest]);
      return artifact.manifest.digest;
    };
    const kept = await attach(amd, 'kept');
    const dropped = await attach(arm, 'dropped');
    expect((await store.list()).map((e) => e.reference)).toEqual([
      'ghcr.io/test/os:drop',
      'ghcr.io/test/os:keep',
    ]);
    const before = await blobCount();

    await store.delete(drop);
    const index = JSON.parse(await readFile(join(root, 'index.json'), 'utf8')) as {
      manifests: { digest: string }[];
    };
    const digests = index.manifests.map((m) => m.digest);
    expect(digests).toContain(kept);
    expect(digests).not.toContain(dropped);
    // arm's manifest, its squashfs, initrd and config, the dropped SBOM's manifest and file (the shared
    // kernel and the empty config stay, still in use).
    expect(before - (await blobCount())).toBe(6);
    expect((await store.repository(keep).listReferrers(amd!.manifest.digest)).map((d) => d.digest)).toEqual([
      kept,
    ]);
  });
});
