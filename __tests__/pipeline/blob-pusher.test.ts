import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesBlob } from '../../src/oci/blob';
import { createRegistryStore } from '../../src/oci/registry';
import { BlobPusher } from '../../src/pipeline/blob-pusher';
import { silentLogger } from '../../src/util/logger';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

let registry: RunningRegistry;
beforeAll(async () => {
  registry = await startRegistry();
});
afterAll(async () => {
  await registry?.stop();
});

describe('BlobPusher', () => {
  it('uploads a blob shared by two images once and mounts it into the second repository', async () => {
    const store = createRegistryStore({ registry: registry.host, logger: silentLogger });
    const pusher = new BlobPusher(store);
    const kernel = bytesBlob(randomBytes(2 * 1024 * 1024), 'kernel');
    // Both images push the same kernel at the same time, as two flavors built in parallel do.
    const results = await Promise.all([
      pusher.push('ns/gardenlinux', kernel),
      pusher.push('ns/gardenlinux/capi', kernel),
      pusher.push('ns/gardenlinux', kernel),
    ]);
    expect(results).toEqual(['uploaded', 'mounted', 'uploaded']);
    expect(store.stats.bytesUploaded).toBe(kernel.size);
    expect(store.stats.blobsMounted).toBe(1);
    expect(await store.repository('ns/gardenlinux/capi').hasBlob(kernel.digest)).toBe(true);
    await store.close();
  });
});
