// Transient failures and hostile answers, injected by a proxy in front of a real registry: retries with
// Retry-After, ghcr's "secondary rate limit" 403, lost uploads, chunked resume after 416 or a dropped
// connection, and no Authorization header on a redirect to another host.
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createRegistryStore } from '../../../src/oci/registry';
import type { RegistryStoreOptions } from '../../../src/oci/registry';
import { isPublishError } from '../../../src/util/errors';
import { memoryLogger } from '../../../src/util/logger';
import { startRegistry } from '../../helpers/registry';
import type { RunningRegistry } from '../../helpers/registry';
import { skopeoInspectRaw } from '../../helpers/skopeo';
import { FAST_RETRY, makeTestImage, writeRandomBlob } from './fixtures';
import type { TestImage } from './fixtures';
import { maxOverlap, startProxy } from './proxy';
import type { RunningProxy } from './proxy';

const creds = { username: 'bob', password: 'hunter2-very-secret' };

describe('registry store under injected faults', () => {
  let registry: RunningRegistry;
  let proxy: RunningProxy;
  let image: TestImage;
  const stores: { close(): Promise<void> }[] = [];

  const store = (extra: Partial<RegistryStoreOptions> = {}) => {
    const logger = memoryLogger();
    const s = createRegistryStore({
      registry: proxy.host,
      credentials: creds,
      logger,
      retry: FAST_RETRY,
      ...extra,
    });
    stores.push(s);
    return { store: s, logger };
  };
  const count = (method: string, pattern: RegExp) =>
    proxy.requests.filter((r) => r.method === method && pattern.test(r.url)).length;

  beforeAll(async () => {
    [registry, image] = await Promise.all([
      startRegistry({ htpasswd: creds }),
      makeTestImage(2 * 1024 * 1024),
    ]);
    proxy = await startProxy(registry.host);
  });
  beforeEach(() => {
    proxy.hook = undefined;
    proxy.requests.length = 0;
  });
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await proxy?.stop();
    await Promise.all([registry?.stop(), image?.cleanup()]);
  });

  it('retries 429 (honouring Retry-After), 503 and a 403 secondary rate limit, re-opening the upload body', async () => {
    const { store: s, logger } = store();
    const repo = s.repository('retries');
    const failed = new Set<string>();
    proxy.hook = (req) => {
      const once = (key: string) => !failed.has(key) && failed.add(key) !== undefined;
      if (req.method === 'POST' && req.url.includes('/blobs/uploads/') && once('post'))
        return {
          kind: 'respond',
          status: 403,
          body: '{"errors":[{"code":"DENIED","message":"You have exceeded a secondary rate limit"}]}',
        };
      // A HEAD has no body to say why; a 403 carrying Retry-After is a throttle too.
      if (req.method === 'HEAD' && req.url.includes('/blobs/') && once('head'))
        return { kind: 'respond', status: 403, headers: { 'retry-after': '0' } };
      if (req.method === 'PUT' && req.url.includes('/blobs/uploads/') && once('put'))
        return { kind: 'respond', status: 503, body: 'upstream overloaded' };
      if (req.method === 'PUT' && req.url.includes('/manifests/') && once('manifest'))
        return {
          kind: 'respond',
          status: 429,
          headers: { 'retry-after': '1' },
          body: '{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}',
        };
      return undefined;
    };
    const arch = image.arches[0]!;
    for (const b of arch.blobs) await repo.pushBlob(b);
    const started = performance.now();
    await repo.pushManifest(arch.manifest, ['r1']);
    expect(performance.now() - started).toBeGreaterThanOrEqual(950);
    expect(failed.size).toBe(4);
    expect(s.stats.blobsUploaded).toBe(arch.blobs.length);
    expect((await skopeoInspectRaw(`docker://${registry.host}/retries:r1`, { creds })).digest).toBe(
      arch.manifest.digest,
    );
    const log = logger.lines.join('\n');
    expect(log).toMatch(/secondary rate limit.*retrying/);
    expect(log).toMatch(/HTTP 503 Service Unavailable: upstream overloaded; retrying/);
    expect(log).toMatch(/toomanyrequests: slow down; retrying in 1\.0s/);
    expect(log).not.toContain(creds.password);
  });

  it('after a PUT whose answer was lost, finds the blob landed (HEAD) instead of uploading again', async () => {
    const { store: s } = store();
    const blob = image.arches[1]!.blobs[1]!;
    let dropped = false;
    proxy.hook = (req) => {
      if (req.method === 'PUT' && req.url.includes('/blobs/uploads/') && !dropped) {
        dropped = true;
        return { kind: 'forward-then-drop' };
      }
      return undefined;
    };
    expect(await s.repository('lost-answer').pushBlob(blob)).toBe('uploaded');
    expect(count('PUT', /\/blobs\/uploads\//)).toBe(1);
    expect(count('POST', /\/blobs\/uploads\//)).toBe(1);
    // One HEAD before the upload, one after the lost answer (plus the first, unauthenticated one that got the challenge).
    expect(proxy.requests.filter((r) => r.method === 'HEAD' && r.headers.authorization).length).toBe(2);
    expect(s.stats.bytesUploaded).toBe(blob.size);
  });

  it('a blob whose last attempt landed but lost its answer is uploaded, not failed: the HEAD comes after the last try too', async () => {
    const { store: s } = store();
    const blob = image.arches[1]!.blobs[2]!;
    let posts = 0;
    proxy.hook = (req) => {
      // Every attempt but the last loses its POST; the last one's PUT stores the blob and its answer is lost.
      if (req.method === 'POST' && req.url.includes('/blobs/uploads/'))
        return ++posts < FAST_RETRY.attempts ? { kind: 'drop' } : undefined;
      if (req.method === 'PUT' && req.url.includes('/blobs/uploads/')) return { kind: 'forward-then-drop' };
      return undefined;
    };
    expect(await s.repository('lost-last-answer').pushBlob(blob)).toBe('uploaded');
    expect(posts).toBe(FAST_RETRY.attempts);
    expect(count('PUT', /\/blobs\/uploads\//)).toBe(1);
    expect(await store().store.repository('lost-last-answer').hasBlob(blob.digest)).toBe(true);
  });

  it('a manifest PUT that landed but whose answer was lost is not retried into a failure: a HEAD finds it', async () => {
    const { store: s } = store();
    const repo = s.repository('lost-manifest-answer');
    const arch = image.arches[0]!;
    for (const b of arch.blobs) await repo.pushBlob(b);
    // Every PUT of a manifest reaches the registry, and every answer is lost on the way back.
    proxy.hook = (req) =>
      req.method === 'PUT' && req.url.includes('/manifests/') ? { kind: 'forward-then-drop' } : undefined;
    await repo.pushManifest(arch.manifest, ['lost-1']);
    // One PUT, then the HEAD before the retry sees the tag naming these bytes.
    expect(count('PUT', /\/manifests\/lost-1$/)).toBe(1);
    expect(count('HEAD', /\/manifests\/lost-1$/)).toBeGreaterThanOrEqual(1);
    const read = await skopeoInspectRaw(`docker://${registry.host}/lost-manifest-answer:lost-1`, { creds });
    expect(read.digest).toBe(arch.manifest.digest);
  });

  it('restarts an upload the registry lost (BLOB_UPLOAD_UNKNOWN)', async () => {
    const { store: s } = store();
    const blob = image.arches[0]!.blobs[2]!;
    let lost = false;
    proxy.hook = (req) => {
      if (req.method === 'PUT' && req.url.includes('/blobs/uploads/') && !lost) {
        lost = true;
        return {
          kind: 'respond',
          status: 404,
          body: '{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown to registry"}]}',
        };
      }
      return undefined;
    };
    expect(await s.repository('lost-upload').pushBlob(blob)).toBe('uploaded');
    expect(count('POST', /\/blobs\/uploads\//)).toBe(2);
    expect(await s.repository('lost-upload').hasBlob(blob.digest)).toBe(true);
  });

  it('resumes a chunked upload from the registry Range after a 416 and a dropped connection, restarts on stale state', async () => {
    const { store: s, logger } = store({ chunkSize: 512 * 1024 });
    const blob = await writeRandomBlob(image.dir, 'chunky', 3 * 1024 * 1024 + 99);
    let patches = 0;
    proxy.hook = (req) => {
      if (req.method !== 'PATCH') return undefined;
      patches++;
      if (patches === 2)
        return {
          kind: 'respond',
          status: 416,
          body: '{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"range invalid"}]}',
        };
      if (patches === 4) return { kind: 'drop' };
      // This chunk lands but its answer is lost: the upload state we hold is stale, so the upload restarts.
      if (patches === 6) return { kind: 'forward-then-drop' };
      return undefined;
    };
    expect(await s.repository('resume').pushBlob(blob)).toBe('uploaded');
    // 7 chunks: c0, c1 (416), c1, c2 (dropped), c2, c3 (stale), then all 7 again.
    expect(patches).toBe(6 + 7);
    expect(count('GET', /\/blobs\/uploads\//)).toBe(3);
    expect(count('POST', /\/blobs\/uploads\//)).toBe(2);
    expect(logger.lines.some((l) => /resuming chunky at byte 524288 /.test(l))).toBe(true);
    expect(logger.lines.some((l) => /resuming chunky at byte 1048576 /.test(l))).toBe(true);
    // The registry verified the digest at the final PUT; check it is there.
    expect(await store().store.repository('resume').hasBlob(blob.digest)).toBe(true);
  });

  it('drops the Authorization header on a redirect to another host, keeps it for the registry', async () => {
    const blob = image.arches[0]!.blobs[0]!; // the config: small, read with readBlob
    const seen: IncomingHttpHeaders[] = [];
    const chunks: Buffer[] = [];
    for await (const chunk of blob.open()) chunks.push(chunk as Buffer);
    const content = Buffer.concat(chunks);
    const cdn: Server = createServer((req, res) => {
      seen.push(req.headers);
      res.end(content);
    });
    await new Promise<void>((resolve) => cdn.listen(0, '127.0.0.2', resolve));
    try {
      const cdnPort = (cdn.address() as AddressInfo).port;
      const { store: s } = store();
      const repo = s.repository('redirect');
      await repo.pushBlob(blob);
      proxy.hook = (req) =>
        req.method === 'GET' && req.url.includes(`/blobs/${blob.digest}`)
          ? {
              kind: 'respond',
              status: 307,
              headers: { location: `http://127.0.0.2:${cdnPort}/cdn/blob?sig=abc` },
            }
          : undefined;
      const bytes = await repo.readBlob(blob.digest);
      expect(Buffer.compare(Buffer.from(bytes), content)).toBe(0);
      expect(seen).toHaveLength(1);
      expect(seen[0]?.authorization).toBeUndefined();
      const registryGet = proxy.requests.find((r) => r.method === 'GET' && r.url.includes('/blobs/'));
      expect(registryGet?.headers.authorization).toMatch(/^Basic /);
    } finally {
      await new Promise<void>((resolve) => cdn.close(() => resolve()));
    }
  });

  it('reports a refused manifest push with the operation, reference and registry error', async () => {
    const { store: s } = store();
    proxy.hook = (req) =>
      req.method === 'PUT' && req.url.includes('/manifests/')
        ? {
            kind: 'respond',
            status: 403,
            body: '{"errors":[{"code":"DENIED","message":"permission_denied: write_package"}]}',
          }
        : undefined;
    const arch = image.arches[0]!;
    const error = await s
      .repository('foo')
      .pushManifest(arch.manifest, ['1.0'])
      .catch((e: unknown) => e);
    expect(isPublishError(error)).toBe(true);
    expect((error as Error).message).toBe(
      `pushing manifest ${proxy.host}/foo:1.0: denied: permission_denied: write_package`,
    );
    expect((error as { hint?: string }).hint).toMatch(/credentials/);
    expect(count('PUT', /\/manifests\//)).toBe(1); // a plain 403 is not retried
  });

  it('bounds concurrent blob pushes across all repositories of a store', async () => {
    const { store: s } = store({ concurrency: 2 });
    const blobs = await Promise.all(
      [0, 1, 2, 3, 4, 5].map((i) => writeRandomBlob(image.dir, `par-${i}`, 1024 * 1024 + i)),
    );
    await Promise.all(blobs.map((b, i) => s.repository(i % 2 ? 'par/a' : 'par/b').pushBlob(b)));
    expect(s.stats.blobsUploaded).toBe(6);
    const uploads = maxOverlap(
      proxy.requests,
      (r) => r.method === 'PUT' && r.url.includes('/blobs/uploads/'),
    );
    expect(uploads).toBeLessThanOrEqual(2);
    expect(
      maxOverlap(proxy.requests, (r) => r.method === 'HEAD' && !!r.headers.authorization),
    ).toBeLessThanOrEqual(2);
  });

  it('streams a blob from disk: a large file is never read whole into memory (sanity check of sizes)', async () => {
    const { store: s } = store();
    const blob = await writeRandomBlob(image.dir, 'big', 40 * 1024 * 1024);
    const before = process.memoryUsage().rss;
    await s.repository('big').pushBlob(blob);
    expect(s.stats.bytesUploaded).toBe(blob.size);
    // Not a strict bound (GC timing), but a buffered 40 MiB body would show up here.
    expect(process.memoryUsage().rss - before).toBeLessThan(30 * 1024 * 1024);
    expect((await readFile(join(image.dir, 'big'))).length).toBe(blob.size);
  });

  it('a manifest, config or referrers answer cut off in the middle of its body is read again, not a crash', async () => {
    const { store: s } = store();
    const repo = s.repository('faults/cut');
    const arch = image.arches[0]!;
    for (const b of arch.blobs) await repo.pushBlob(b);
    await repo.pushManifest(arch.manifest, ['cut']);
    // The first answer of each kind loses its body after a few bytes (the headers got through).
    const cut = new Set<string>();
    proxy.hook = (r) => {
      const kind = /\/(manifests|blobs|referrers)\//.exec(r.url)?.[1];
      if (r.method !== 'GET' || !kind || cut.has(kind)) return undefined;
      cut.add(kind);
      return { kind: 'cut-response', afterBytes: 10 };
    };
    const manifest = await repo.getManifest('cut');
    expect(manifest?.digest).toBe(arch.manifest.digest);
    const config = JSON.parse(Buffer.from(await repo.readBlob(arch.blobs[0]!.digest)).toString()) as object;
    expect(config).toHaveProperty('commandLine');
    expect(await repo.listReferrers(arch.manifest.digest)).toEqual([]);
    expect([...cut].sort()).toEqual(['blobs', 'manifests', 'referrers']);
    // Each cut answer was asked for again.
    expect(count('GET', /\/manifests\/cut$/)).toBe(2);
    expect(count('GET', new RegExp(`/blobs/${arch.blobs[0]!.digest}$`))).toBe(2);
  });

  it('a layer download cut off in the middle is one PublishError saying so (the caller streams it: no retry here)', async () => {
    const { store: s } = store();
    const repo = s.repository('faults/cut-layer');
    const layer = image.arches[0]!.blobs[1]!;
    await repo.pushBlob(layer);
    proxy.hook = (r) =>
      r.method === 'GET' && r.url.endsWith(`/blobs/${layer.digest}`)
        ? { kind: 'cut-response', afterBytes: 100_000 }
        : undefined;
    const body = await repo.openBlob(layer.digest);
    let received = 0;
    const error = await (async () => {
      for await (const chunk of body) received += chunk.length;
    })().catch((e: unknown) => e);
    expect(isPublishError(error)).toBe(true);
    expect((error as Error).message).toMatch(
      new RegExp(`^reading blob ${layer.digest} from .*faults/cut-layer: the download was cut off \\(`),
    );
    expect(received).toBeLessThan(layer.size);
  });
});
