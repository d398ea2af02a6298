// Pushes a multi-arch IronCore image to a real registry (distribution 2.8) with our client and reads it
// back with skopeo, an independent client: manifests byte for byte, blobs file for file.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistryStore } from '../../../src/oci/registry';
import type { Repository, Store } from '../../../src/oci/store';
import { memoryLogger } from '../../../src/util/logger';
import { startRegistry } from '../../helpers/registry';
import type { RunningRegistry } from '../../helpers/registry';
import { skopeoCopy, skopeoInspectRaw } from '../../helpers/skopeo';
import { FAST_RETRY, makeTestImage } from './fixtures';
import type { TestImage } from './fixtures';
import type { Blob } from '../../../src/oci/blob';

async function readBlobBytes(blob: Blob): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of blob.open()) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function pushImage(repo: Repository, image: TestImage, tag: string): Promise<void> {
  // All blobs at once: the store bounds concurrency and de-duplicates the shared kernel layer.
  await Promise.all(image.arches.flatMap((a) => a.blobs.map((b) => repo.pushBlob(b))));
  for (const a of image.arches) await repo.pushManifest(a.manifest, [`${tag}-${a.arch}`]);
  await repo.pushManifest(image.index, [tag, `${tag}-latest`]);
}

async function verifyWithSkopeo(
  ref: string,
  image: TestImage,
  creds?: { username: string; password: string },
): Promise<void> {
  const index = await skopeoInspectRaw(`docker://${ref}`, creds ? { creds } : {});
  expect(index.digest).toBe(image.index.digest);
  expect(Buffer.compare(index.bytes, Buffer.from(image.index.bytes))).toBe(0);
  const out = await mkdtemp(join(tmpdir(), 'registry-readback-'));
  try {
    await skopeoCopy(`docker://${ref}`, `oci:${out}:x`, creds ? { srcCreds: creds } : {});
    for (const blob of image.blobs) {
      const copied = await readFile(join(out, 'blobs', 'sha256', blob.digest.slice(7)));
      expect(copied.length).toBe(blob.size);
      expect(Buffer.compare(copied, await readBlobBytes(blob))).toBe(0);
    }
    for (const a of image.arches) {
      const m = await readFile(join(out, 'blobs', 'sha256', a.manifest.digest.slice(7)));
      expect(Buffer.compare(m, Buffer.from(a.manifest.bytes))).toBe(0);
    }
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

describe('registry store against a real registry', () => {
  let anon: RunningRegistry;
  let basic: RunningRegistry;
  let image: TestImage;
  const creds = { username: 'alice', password: 's3cret-Pa55word' };

  beforeAll(async () => {
    [anon, basic, image] = await Promise.all([
      startRegistry(),
      startRegistry({ htpasswd: creds }),
      makeTestImage(),
    ]);
  });
  afterAll(async () => {
    await Promise.all([anon?.stop(), basic?.stop(), image?.cleanup()]);
  });

  it('pushes a multi-arch IronCore image that skopeo reads back identically, and a re-push sends no bytes', async () => {
    const logger = memoryLogger();
    const store = createRegistryStore({ registry: anon.host, logger, retry: FAST_RETRY });
    try {
      const repo = store.repository('ironcore/gardenlinux');
      await pushImage(repo, image, '1877.3');
      const distinctBytes = image.blobs.reduce((n, b) => n + b.size, 0);
      expect(store.stats.blobsUploaded).toBe(image.blobs.length);
      expect(store.stats.bytesUploaded).toBe(distinctBytes);
      expect(store.stats.manifestsPushed).toBe(3);
      await verifyWithSkopeo(`${anon.host}/ironcore/gardenlinux:1877.3`, image);
      const arm = await skopeoInspectRaw(`docker://${anon.host}/ironcore/gardenlinux:1877.3-arm64`);
      expect(arm.digest).toBe(image.arches[1]?.manifest.digest);

      // Reads through our own client agree.
      expect(await repo.resolveTag('1877.3-latest')).toBe(image.index.digest);
      expect(await repo.resolveTag('nope')).toBeUndefined();
      const fetched = await repo.getManifest('1877.3');
      expect(fetched?.digest).toBe(image.index.digest);
      expect(fetched?.mediaType).toBe('application/vnd.oci.image.index.v1+json');
      expect(await repo.getManifest('missing')).toBeUndefined();
      const config = image.arches[0]!.blobs[0]!;
      expect(JSON.parse(Buffer.from(await repo.readBlob(config.digest)).toString()).commandLine).toContain(
        'ttyS0',
      );
      await expect(repo.readBlob(`sha256:${'0'.repeat(64)}`)).rejects.toThrow(/does not exist/);

      // Second push of the same image: every blob exists, no bytes are sent.
      const again = createRegistryStore({ registry: anon.host, logger, retry: FAST_RETRY });
      await pushImage(again.repository('ironcore/gardenlinux'), image, '1877.3');
      expect(again.stats.bytesUploaded).toBe(0);
      expect(again.stats.blobsUploaded).toBe(0);
      expect(again.stats.blobsExisting).toBe(image.blobs.length);
      await again.close();

      // A mount into another repository moves no bytes either.
      const other = store.repository('ironcore/gardenlinux/gardener');
      const before = store.stats.bytesUploaded;
      const results = await Promise.all(
        image.blobs.map((b) => other.pushBlob(b, { mountFrom: 'ironcore/gardenlinux' })),
      );
      expect(results.every((r) => r === 'mounted')).toBe(true);
      expect(store.stats.blobsMounted).toBe(image.blobs.length);
      expect(store.stats.bytesUploaded).toBe(before);
      expect(await other.hasBlob(image.blobs[0]!.digest)).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('pushes with htpasswd Basic auth and never logs the password', async () => {
    const logger = memoryLogger();
    const store = createRegistryStore({
      registry: basic.host,
      credentials: creds,
      logger,
      retry: FAST_RETRY,
    });
    try {
      await pushImage(store.repository('gardenlinux'), image, '2150.0.0');
      await verifyWithSkopeo(`${basic.host}/gardenlinux:2150.0.0`, image, creds);
      expect(logger.lines.join('\n')).not.toContain(creds.password);
    } finally {
      await store.close();
    }
  });

  it('uploads in chunks when asked (small chunk size) and the result is the same blob', async () => {
    const logger = memoryLogger();
    const store = createRegistryStore({
      registry: anon.host,
      logger,
      retry: FAST_RETRY,
      chunkSize: 1024 * 1024,
    });
    try {
      const repo = store.repository('chunked');
      await pushImage(repo, image, 'c1');
      expect(store.stats.bytesUploaded).toBe(image.blobs.reduce((n, b) => n + b.size, 0));
      await verifyWithSkopeo(`${anon.host}/chunked:c1`, image);
    } finally {
      await store.close();
    }
  });

  it('finds credentials in docker config.json (auths.<host>.auth)', async () => {
    const { mkdtemp: mk, writeFile } = await import('node:fs/promises');
    const dir = await mk(join(tmpdir(), 'docker-config-'));
    try {
      const auth = Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
      await writeFile(
        join(dir, 'config.json'),
        JSON.stringify({ auths: { [`http://${basic.host}`]: { auth } } }),
      );
      const store: Store = createRegistryStore({
        registry: basic.host,
        dockerConfig: dir,
        logger: memoryLogger(),
        retry: FAST_RETRY,
      });
      expect(await store.repository('gardenlinux').resolveTag('2150.0.0')).toBe(image.index.digest);
      await store.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
