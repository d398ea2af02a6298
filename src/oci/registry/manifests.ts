// Manifest and index pushes and reads, and small blob reads (configs). Manifests are small, so they are
// held in memory; their bytes are checked against the digest the caller or the registry named.
import type { FetchedManifest, StoreStats } from '../store';
import type { SerializedManifest } from '../types';
import { sha256Digest, isDigest } from '../digest';
import { DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST } from '../mediatypes';
import { PublishError } from '../../util/errors';
import type { Logger } from '../../util/logger';
import { hasErrorCode } from './errors';
import { discard, registryBodyOf, statusOf } from './http';
import type { RegistryClient, SendOptions } from './http';
import type { Dispatcher } from 'undici';

type BlobBody = Dispatcher.ResponseData['body'];
import { pullScope, pushScope } from './blobs';
import { TransientError, withRetry } from './retry';

export interface ManifestContext {
  client: RegistryClient;
  repo: string;
  location: string;
  stats: StoreStats;
  logger: Logger;
}

const ACCEPT = [OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST].join(', ');
/** Registries cap manifests at 4 MiB; anything bigger is not a manifest. */
const MANIFEST_LIMIT = 4 * 1024 * 1024;

function ref(ctx: ManifestContext, tagOrDigest: string): string {
  return `${ctx.location}${isDigest(tagOrDigest) ? '@' : ':'}${tagOrDigest}`;
}

/** ghcr.io sometimes does not yet see blobs pushed a moment ago (MANIFEST_BLOB_UNKNOWN); that passes. */
function childrenNotYetVisible(error: unknown): boolean {
  const body = registryBodyOf(error);
  return (
    (statusOf(error) === 400 || statusOf(error) === 404) &&
    (hasErrorCode(body, 'MANIFEST_BLOB_UNKNOWN') || hasErrorCode(body, 'BLOB_UNKNOWN'))
  );
}

export interface ManifestPutOptions {
  signal?: AbortSignal;
  /** Conditional write (the referrers fallback tag): a 412 answer is handed back instead of thrown. */
  ifMatch?: string;
}

/** One manifest PUT under `target` (a tag or its digest), retried while transient; returns the registry's answer. */
export async function putManifest(
  ctx: ManifestContext,
  manifest: SerializedManifest,
  target: string,
  options: ManifestPutOptions = {},
): Promise<{ status: number; headers: Record<string, string | undefined> }> {
  const { signal } = options;
  const operation = `pushing manifest ${ref(ctx, target)}`;
  const res = await withRetry(
    async () => {
      try {
        const answer = await ctx.client.sendOnce({
          method: 'PUT',
          url: `/v2/${ctx.repo}/manifests/${target}`,
          scopes: [pushScope(ctx.repo)],
          operation,
          expect: options.ifMatch !== undefined ? [200, 201, 202, 412] : [200, 201, 202],
          headers: {
            'content-type': manifest.mediaType,
            ...(options.ifMatch !== undefined ? { 'if-match': options.ifMatch } : {}),
          },
          body: () => manifest.bytes,
          ...(signal ? { signal } : {}),
        });
        await discard(answer.body);
        return { status: answer.status, headers: answer.headers };
      } catch (error) {
        if (childrenNotYetVisible(error)) throw new TransientError(error as PublishError);
        throw error;
      }
    },
    {
      retry: ctx.client.retry,
      logger: ctx.logger,
      what: operation,
      ...(signal ? { signal } : {}),
      // A PUT whose answer was lost may have landed (a load balancer's timeout after the registry stored
      // it): when the target already names these bytes, the write is done. A conditional write is left to
      // its caller's read-merge-write.
      ...(options.ifMatch === undefined
        ? {
            landed: async () =>
              (await resolveTag(ctx, target, signal).catch(() => undefined)) === manifest.digest
                ? { done: { status: 201, headers: { 'docker-content-digest': manifest.digest } } }
                : undefined,
          }
        : {}),
    },
  );
  const stored = res.headers['docker-content-digest'];
  if (res.status !== 412 && stored && stored !== manifest.digest) {
    throw new PublishError(
      `${operation}: the registry stored it as ${stored}, not ${manifest.digest} (it rewrote the manifest)`,
    );
  }
  return { status: res.status, headers: res.headers };
}

export async function pushManifest(
  ctx: ManifestContext,
  manifest: SerializedManifest,
  tags: readonly string[],
  signal?: AbortSignal,
): Promise<void> {
  const targets = tags.length > 0 ? tags : [manifest.digest];
  for (const target of targets) await putManifest(ctx, manifest, target, signal ? { signal } : {});
  ctx.stats.manifestsPushed++;
  ctx.logger.debug(
    `pushed ${manifest.mediaType} ${manifest.digest} to ${ctx.location} as ${targets.join(', ')}`,
  );
}

export async function getManifest(
  ctx: ManifestContext,
  tagOrDigest: string,
  signal?: AbortSignal,
): Promise<FetchedManifest | undefined> {
  const operation = `reading manifest ${ref(ctx, tagOrDigest)}`;
  const res = await ctx.client.sendAndRead(
    {
      method: 'GET',
      url: `/v2/${ctx.repo}/manifests/${tagOrDigest}`,
      scopes: [pullScope(ctx.repo)],
      operation,
      expect: [200, 404],
      headers: { accept: ACCEPT },
      followRedirects: true,
      ...(signal ? { signal } : {}),
    },
    MANIFEST_LIMIT,
  );
  const bytes = res.bytes;
  if (!bytes) return undefined;
  const digest = sha256Digest(bytes);
  if (isDigest(tagOrDigest) && digest !== tagOrDigest) {
    throw new PublishError(`${operation}: the registry sent bytes whose digest is ${digest}`);
  }
  let mediaType = (res.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
  try {
    // The mediaType field inside is more reliable than a Content-Type some registries rewrite.
    const inner = (JSON.parse(Buffer.from(bytes).toString('utf8')) as { mediaType?: unknown }).mediaType;
    if (typeof inner === 'string' && inner) mediaType = inner;
  } catch {
    throw new PublishError(`${operation}: the registry sent something that is not JSON`);
  }
  const etag = res.headers.etag;
  return { mediaType, digest, bytes, ...(etag ? { etag } : {}) };
}

export async function resolveTag(
  ctx: ManifestContext,
  tag: string,
  signal?: AbortSignal,
): Promise<string | undefined> {
  const res = await ctx.client.send({
    method: 'HEAD',
    url: `/v2/${ctx.repo}/manifests/${tag}`,
    scopes: [pullScope(ctx.repo)],
    operation: `resolving ${ref(ctx, tag)}`,
    expect: [200, 404],
    headers: { accept: ACCEPT },
    followRedirects: true,
    ...(signal ? { signal } : {}),
  });
  await discard(res.body);
  if (res.status === 404) return undefined;
  const digest = res.headers['docker-content-digest'];
  if (digest && isDigest(digest)) return digest;
  // Not every registry sends the digest on HEAD; the manifest itself tells.
  return (await getManifest(ctx, tag, signal))?.digest;
}

/** The GET of a blob (404 answered, not thrown), streamed or read whole. */
function blobRequest(ctx: ManifestContext, digest: string, signal?: AbortSignal): SendOptions {
  return {
    method: 'GET',
    url: `/v2/${ctx.repo}/blobs/${digest}`,
    scopes: [pullScope(ctx.repo)],
    operation: `reading blob ${digest} from ${ctx.location}`,
    expect: [200, 404],
    followRedirects: true,
    ...(signal ? { signal } : {}),
  };
}

/**
 * A blob's body as the registry streams it, not checked: layers are hashed by the caller while written.
 * Blob downloads redirect to a CDN; the client drops the Authorization header when the host changes.
 */
export async function openBlob(
  ctx: ManifestContext,
  digest: string,
  signal?: AbortSignal,
): Promise<AsyncIterable<Uint8Array>> {
  const request = blobRequest(ctx, digest, signal);
  const { operation } = request;
  const res = await ctx.client.send(request);
  if (res.status === 404) {
    await discard(res.body);
    throw new PublishError(`${operation}: the blob does not exist`);
  }
  return cutOffIsAnError(res.body, operation, signal);
}

/** A body whose connection breaks ends in a PublishError that says so (not a socket error with a stack). */
async function* cutOffIsAnError(
  body: BlobBody,
  operation: string,
  signal: AbortSignal | undefined,
): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of body as AsyncIterable<Uint8Array>) yield chunk;
  } catch (error) {
    if (error instanceof PublishError || signal?.aborted) throw error;
    throw new PublishError(
      `${operation}: the download was cut off (${(error as Error).message ?? String(error)})`,
      { cause: error, hint: 'Run again: nothing incomplete was kept.' },
    );
  } finally {
    body.destroy();
  }
}

/** A small blob (a config), read into memory and checked against its digest. */
export async function readBlob(
  ctx: ManifestContext,
  digest: string,
  signal?: AbortSignal,
  limit = 16 * 1024 * 1024,
): Promise<Uint8Array> {
  const request = blobRequest(ctx, digest, signal);
  const { operation } = request;
  const res = await ctx.client.sendAndRead(request, limit);
  const bytes = res.bytes;
  if (!bytes) throw new PublishError(`${operation}: the blob does not exist`);
  const actual = sha256Digest(bytes);
  if (actual !== digest)
    throw new PublishError(`${operation}: the registry sent bytes whose digest is ${actual}`);
  return bytes;
}
