import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesBlob, fileBlob } from '../../../src/oci/blob';
import { buildArchImage, buildIndex, type BuiltArchImage } from '../../../src/oci/ironcore';
import { createLayoutStore } from '../../../src/oci/layout/store';
import { hashFile } from '../../../src/util/files';
import { skopeoCopy, skopeoInspectRaw } from '../../helpers/skopeo';

let work: string;
let kernel: string;
let squashfs: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'layout-test-'));
  kernel = join(work, 'vmlinuz');
  squashfs = join(work, 'root.squashfs');
  await writeFile(kernel, randomBytes(3 * 1024 * 1024));
  await writeFile(squashfs, randomBytes(5 * 1024 * 1024));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function sampleImages(): Promise<BuiltArchImage[]> {
  const k = await hashFile(kernel);
  const s = await hashFile(squashfs);
  return (['amd64', 'arm64'] as const).map((architecture) =>
    buildArchImage({
      architecture,
      variant: 'metal',
      title: `test metal ${architecture}`,
      commandLine: `console=tty0 arch=${architecture}`,
      // The same kernel and squashfs blob in both arches: stored once per repository.
      layers: [
        { role: 'squashfs', blob: fileBlob(s.path, s.digest, s.size), title: 'root.squashfs' },
        { role: 'kernel', blob: fileBlob(k.path, k.digest, k.size), title: 'vmlinuz' },
      ],
    }),
  );
}

describe('OCI layout store', () => {
  it('stores a multi-arch IronCore image that skopeo reads back with the same digests', async () => {
    const root = join(work, 'out1');
    const store = createLayoutStore(root);
    const repo = store.repository('gardenlinux/gardener');
    const images = await sampleImages();
    for (const image of images) {
      for (const blob of image.blobs) await repo.pushBlob(blob);
      await repo.pushManifest(image.manifest, [`1.0-metal-${image.architecture}`]);
    }
    const index = buildIndex(images.map((i) => ({ manifest: i.manifest, architecture: i.architecture })));
    await repo.pushManifest(index, ['1.0-metal']);

    const raw = await skopeoInspectRaw(`oci:${join(root, 'gardenlinux/gardener')}:1.0-metal`);
    expect(raw.digest).toBe(index.digest);
    const parsed = JSON.parse(raw.bytes.toString()) as {
      manifests: { platform: { architecture: string } }[];
    };
    expect(parsed.manifests.map((m) => m.platform.architecture)).toEqual(['amd64', 'arm64']);
    for (const image of images) {
      const m = await skopeoInspectRaw(
        `oci:${join(root, 'gardenlinux/gardener')}:1.0-metal-${image.architecture}`,
      );
      expect(m.digest).toBe(image.manifest.digest);
    }
    // kernel + squashfs once, plus two configs: 4 blobs uploaded, 2 found existing.
    expect(store.stats.blobsUploaded).toBe(4);
    expect(store.stats.blobsExisting).toBe(2);

    // An independent copy out of the layout proves every blob is present and matches its digest.
    const copy = join(work, 'copy1');
    await skopeoCopy(`oci:${join(root, 'gardenlinux/gardener')}:1.0-metal`, `oci:${copy}:x`);
    const copied = await readdir(join(copy, 'blobs', 'sha256'));
    expect(copied).toContain((await hashFile(kernel)).digest.slice(7));
  });

  it('writes byte-identical manifests on every run and re-pushes nothing', async () => {
    const first = await sampleImages();
    const second = await sampleImages();
    expect(second.map((i) => i.manifest.digest)).toEqual(first.map((i) => i.manifest.digest));

    const root = join(work, 'out2');
    const store = createLayoutStore(root);
    const repo = store.repository('gardenlinux');
    for (const pass of [first, second]) {
      for (const image of pass) {
        for (const blob of image.blobs) await repo.pushBlob(blob);
        await repo.pushManifest(image.manifest, ['t']);
      }
    }
    expect(store.stats.bytesUploaded).toBe(8 * 1024 * 1024 + first[0]!.blobs[0]!.size * 2);
    const indexJson = JSON.parse(await readFile(join(root, 'gardenlinux', 'index.json'), 'utf8'));
    // One tag names one manifest: the later push replaced the entry rather than adding one.
    expect(indexJson.manifests).toHaveLength(1);
  });

  it('mounts a blob from a sibling repository instead of writing it again', async () => {
    const root = join(work, 'out3');
    const store = createLayoutStore(root);
    const blob = bytesBlob(randomBytes(1024 * 1024));
    expect(await store.repository('a').pushBlob(blob)).toBe('uploaded');
    expect(await store.repository('b').pushBlob(blob, { mountFrom: 'a' })).toBe('mounted');
    expect(await store.repository('b').hasBlob(blob.digest)).toBe(true);
    expect(store.stats.bytesUploaded).toBe(1024 * 1024);
  });

  it('refuses a blob whose bytes do not match its digest and leaves nothing behind', async () => {
    const root = join(work, 'out4');
    const repo = createLayoutStore(root).repository('bad');
    const path = join(work, 'changing');
    await writeFile(path, 'original');
    const hashed = await hashFile(path);
    await writeFile(path, 'changed!');
    await expect(repo.pushBlob(fileBlob(path, hashed.digest, hashed.size))).rejects.toThrow(
      /content has digest sha256:[0-9a-f]+, not the expected/,
    );
    expect(await readdir(join(root, 'bad', 'blobs', 'sha256'))).toEqual([]);
  });

  it('rejects invalid repository names and tags with a clear message', async () => {
    const store = createLayoutStore(join(work, 'out5'));
    expect(() => store.repository('GardenLinux')).toThrow(/invalid repository name "GardenLinux".*lowercase/);
    const image = (await sampleImages())[0]!;
    await expect(store.repository('ok').pushManifest(image.manifest, ['bad tag'])).rejects.toThrow(
      /invalid tag "bad tag"/,
    );
  });
});
