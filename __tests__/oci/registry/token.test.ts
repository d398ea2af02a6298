// The Bearer token flow against a real registry configured with `auth: token`: the token service of the
// test helpers (node:http on 127.0.0.1) signs RS256 JWTs with a key whose certificate the registry trusts.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createRegistryStore } from '../../../src/oci/registry';
import { isPublishError } from '../../../src/util/errors';
import { memoryLogger } from '../../../src/util/logger';
import { startRegistry } from '../../helpers/registry';
import type { RunningRegistry } from '../../helpers/registry';
import { skopeoInspectRaw } from '../../helpers/skopeo';
import { startTokenService, type TokenService } from '../../helpers/token-service';
import { FAST_RETRY, makeTestImage, writeRandomBlob } from './fixtures';
import type { TestImage } from './fixtures';

const SERVICE = 'test-registry';
const creds = { username: 'carol', password: 'token-Secret-42' };

describe('Bearer token flow against a real token-auth registry', () => {
  let registry: RunningRegistry;
  let tokens: TokenService;
  let image: TestImage;

  beforeAll(async () => {
    tokens = await startTokenService({ credentials: creds, service: SERVICE });
    [registry, image] = await Promise.all([
      startRegistry({ token: tokens.registryOptions }),
      makeTestImage(1024 * 1024),
    ]);
  });
  beforeEach(() => {
    tokens.requests.length = 0;
    tokens.mode.field = 'token';
    tokens.mode.expiresIn = undefined;
  });
  afterAll(async () => {
    await registry?.stop();
    await Promise.all([tokens?.stop(), image?.cleanup()]);
  });

  it('gets one token per scope set (with service, scope and Basic credentials) and pushes an image skopeo reads', async () => {
    const logger = memoryLogger();
    const store = createRegistryStore({
      registry: registry.host,
      credentials: creds,
      logger,
      retry: FAST_RETRY,
    });
    try {
      const repo = store.repository('tok/gardenlinux');
      await Promise.all(image.blobs.map((b) => repo.pushBlob(b)));
      for (const a of image.arches) await repo.pushManifest(a.manifest, [`1.0-${a.arch}`]);
      await repo.pushManifest(image.index, ['1.0']);
      expect(await repo.resolveTag('1.0')).toBe(image.index.digest);
      // Everything ran under one token: `pull,push` also covers the reads.
      expect(tokens.requests).toHaveLength(1);
      expect(tokens.requests[0]).toEqual({
        service: SERVICE,
        scopes: ['repository:tok/gardenlinux:pull,push'],
        authorization: `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`,
      });
      expect(store.tokenRequests).toBe(1);

      // A mount asks for a new scope set: pull on the source too.
      const other = store.repository('tok/other');
      expect(await other.pushBlob(image.blobs[1]!, { mountFrom: 'tok/gardenlinux' })).toBe('mounted');
      expect(
        tokens.requests.some(
          (r) =>
            r.scopes.includes('repository:tok/gardenlinux:pull') &&
            r.scopes.includes('repository:tok/other:pull,push'),
        ),
      ).toBe(true);
      expect(logger.lines.join('\n')).not.toContain(creds.password);

      const read = await skopeoInspectRaw(`docker://${registry.host}/tok/gardenlinux:1.0`, { creds });
      expect(read.digest).toBe(image.index.digest);
    } finally {
      await store.close();
    }
  });

  it('takes access_token, renews a token about to expire, and renews before an upload that would outlive it', async () => {
    tokens.mode.field = 'access_token';
    tokens.mode.expiresIn = 15; // the client renews 10 s before expiry
    const store = createRegistryStore({
      registry: registry.host,
      credentials: creds,
      logger: memoryLogger(),
      retry: FAST_RETRY,
    });
    try {
      const repo = store.repository('tok/renew');
      await repo.pushBlob(image.blobs[0]!);
      expect(tokens.requests).toHaveLength(1);
      await repo.pushBlob(image.blobs[1]!);
      expect(tokens.requests).toHaveLength(1); // still fresh
      // 40 MiB at the assumed worst 5 MB/s takes ~8 s: more than the token has left beyond the margin.
      const big = await writeRandomBlob(image.dir, 'big-token', 40 * 1024 * 1024);
      await repo.pushBlob(big);
      expect(tokens.requests).toHaveLength(2);
      expect(await repo.hasBlob(big.digest)).toBe(true);
      // After 5.5 s the 15 s token is inside the renewal margin: the next request gets a new one.
      await new Promise((r) => setTimeout(r, 5500));
      expect(await repo.hasBlob(image.blobs[0]!.digest)).toBe(true);
      expect(tokens.requests).toHaveLength(3);
    } finally {
      await store.close();
    }
  });

  it("blobAccess (the toolkit's url) gives a URL and a fresh Bearer header that fetch the blob", async () => {
    const store = createRegistryStore({
      registry: registry.host,
      credentials: creds,
      logger: memoryLogger(),
      retry: FAST_RETRY,
    });
    try {
      const blob = image.blobs[1]!;
      await store.repository('tok/url').pushBlob(blob);
      const access = await store.blobAccess('tok/url', blob.digest);
      expect(access.url).toBe(`http://${registry.host}/v2/tok/url/blobs/${blob.digest}`);
      expect(access.headers.Authorization?.[0]).toMatch(
        /^Bearer [A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/,
      );
      const res = await fetch(access.url, { headers: { Authorization: access.headers.Authorization![0]! } });
      expect(res.status).toBe(200);
      expect(
        `sha256:${createHash('sha256')
          .update(Buffer.from(await res.arrayBuffer()))
          .digest('hex')}`,
      ).toBe(blob.digest);
      expect((await fetch(access.url)).status).toBe(401);
      await expect(store.blobAccess('tok/url', `sha256:${'0'.repeat(64)}`)).rejects.toThrow(/does not exist/);
    } finally {
      await store.close();
    }
  });

  it('reports refused credentials clearly, without the password', async () => {
    const store = createRegistryStore({
      registry: registry.host,
      credentials: { ...creds, password: 'wrong-Pa55' },
      logger: memoryLogger(),
      retry: FAST_RETRY,
    });
    try {
      const error = await store
        .repository('tok/denied')
        .pushBlob(image.blobs[0]!)
        .catch((e: unknown) => e);
      expect(isPublishError(error)).toBe(true);
      const message = (error as Error).message;
      expect(message).toMatch(
        /^checking blob sha256:[0-9a-f]{12} in 127\.0\.0\.1:\d+\/tok\/denied: the token service 127\.0\.0\.1:\d+ refused the credentials of user "carol" \(HTTP 401\)$/,
      );
      expect(message).not.toContain('wrong-Pa55');
    } finally {
      await store.close();
    }
  });
});
