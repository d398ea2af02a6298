// The registry Store: a remote OCI distribution registry (ghcr.io first) behind the same interface as
// the on-disk layout. Only this folder speaks HTTP to registries.
import type { Blob } from '../blob';
import { emptyStats } from '../store';
import type { BlobPushResult, FetchedManifest, Repository, Store, StoreStats } from '../store';
import type { SerializedManifest } from '../types';
import { validateRegistryHost, validateRepositoryName } from '../reference';
import { Semaphore } from '../../util/concurrency';
import { PublishError } from '../../util/errors';
import type { Logger } from '../../util/logger';
import { pushBlob, blobExists, pullScope } from './blobs';
import type { BlobContext } from './blobs';
import { resolveCredentials } from './credentials';
import type { Credentials } from './credentials';
import { RegistryClient } from './http';
import { getManifest, openBlob, pushManifest, readBlob, resolveTag } from './manifests';
import { profileFor } from './profiles';
import { listReferrers, pushReferrers, type ReferrersCapability } from './referrers';
import type { RetryOptions } from './retry';

export type { Credentials } from './credentials';
export type { RetryOptions } from './retry';
export { profileFor, planUpload } from './profiles';
export type { RegistryProfile, UploadPlan } from './profiles';

export interface RegistryStoreOptions {
  /** `host[:port]`, e.g. `ghcr.io` or `127.0.0.1:5000`. */
  registry: string;
  /** Explicit credentials; without them docker's config.json is consulted. */
  credentials?: Credentials;
  /** Folder holding docker's config.json; default $DOCKER_CONFIG or ~/.docker. */
  dockerConfig?: string;
  /**
   * Plain HTTP allowed for a non-loopback registry. Loopback registries always allow it; either way
   * HTTPS is tried first and plain HTTP used only when the registry does not speak TLS.
   */
  insecure?: boolean;
  /** Bound on concurrent blob pushes across all repositories of the store (default 4). */
  concurrency?: number;
  logger: Logger;
  retry?: Partial<RetryOptions>;
  /** Forces chunked uploads with this chunk size (clamped into the registry's limits). */
  chunkSize?: number;
  signal?: AbortSignal;
}

export interface RegistryStore extends Store {
  /** Token requests made so far (for tests and diagnostics). */
  readonly tokenRequests: number;
  /**
   * Where a blob is fetched from and the headers that fetch it (a fresh token, when the registry wants one):
   * what `url` prints for tools that download layers themselves. Throws PublishError when the blob is missing.
   */
  blobAccess(repository: string, digest: string, signal?: AbortSignal): Promise<BlobAccess>;
}

export interface BlobAccess {
  url: string;
  headers: Record<string, string[]>;
}

export function createRegistryStore(options: RegistryStoreOptions): RegistryStore {
  const registry = validateRegistryHost(options.registry);
  const stats: StoreStats = emptyStats();
  const client = new RegistryClient({
    registry,
    loadCredentials: () =>
      resolveCredentials(registry, {
        ...(options.credentials ? { credentials: options.credentials } : {}),
        ...(options.dockerConfig ? { dockerConfig: options.dockerConfig } : {}),
        logger: options.logger,
      }),
    ...(options.insecure !== undefined ? { insecure: options.insecure } : {}),
    logger: options.logger,
    ...(options.retry ? { retry: options.retry } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const uploads = new Semaphore(Math.max(1, options.concurrency ?? 4));
  const profile = profileFor(registry);
  const repositories = new Map<string, Repository>();
  // Whether the registry serves the referrers API: learnt from the first referrer pushed, for every repository.
  const referrers: ReferrersCapability = {};

  const makeRepository = (name: string): Repository => {
    const repo = validateRepositoryName(name);
    const ctx: BlobContext = {
      client,
      repo,
      location: `${registry}/${repo}`,
      stats,
      profile,
      logger: options.logger,
      ...(options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {}),
    };
    // Two manifests naming the same blob may push it at the same time; the second waits for the first.
    const inFlight = new Map<string, Promise<BlobPushResult>>();
    return {
      location: ctx.location,
      hasBlob: (digest: string, signal?: AbortSignal) => blobExists(ctx, digest, [pullScope(repo)], signal),
      pushBlob(
        blob: Blob,
        pushOptions?: { mountFrom?: string; signal?: AbortSignal },
      ): Promise<BlobPushResult> {
        const running = inFlight.get(blob.digest);
        if (running) return running;
        const push = uploads
          .run(() => pushBlob(ctx, blob, pushOptions))
          .finally(() => inFlight.delete(blob.digest));
        inFlight.set(blob.digest, push);
        return push;
      },
      pushManifest: (manifest: SerializedManifest, tags: readonly string[], signal?: AbortSignal) =>
        pushManifest(ctx, manifest, tags, signal),
      getManifest: (tagOrDigest: string, signal?: AbortSignal): Promise<FetchedManifest | undefined> =>
        getManifest(ctx, tagOrDigest, signal),
      openBlob: (digest: string, signal?: AbortSignal) => openBlob(ctx, digest, signal),
      readBlob: (digest: string, signal?: AbortSignal) => readBlob(ctx, digest, signal),
      resolveTag: (tag: string, signal?: AbortSignal) => resolveTag(ctx, tag, signal),
      pushReferrers: (subject, artifacts, signal) =>
        pushReferrers(ctx, referrers, subject, artifacts, signal),
      listReferrers: (subject, signal) => listReferrers(ctx, referrers, subject, signal),
    };
  };

  return {
    description: registry,
    stats,
    async blobAccess(repository: string, digest: string, signal?: AbortSignal): Promise<BlobAccess> {
      const repo = validateRepositoryName(repository);
      const ctx = { client, repo, location: `${registry}/${repo}`, stats, profile, logger: options.logger };
      // The HEAD answers the challenge (and so fetches the token) and proves the blob is there.
      if (!(await blobExists(ctx, digest, [pullScope(repo)], signal)))
        throw new PublishError(`${registry}/${repo}: blob ${digest} does not exist`);
      const authorization = await client.auth.header([pullScope(repo)]);
      return {
        url: `${await client.baseUrl()}/v2/${repo}/blobs/${digest}`,
        headers: authorization ? { Authorization: [authorization] } : {},
      };
    },
    get tokenRequests() {
      return client.auth.tokenRequests;
    },
    repository(name: string): Repository {
      let repository = repositories.get(name);
      if (!repository) {
        repository = makeRepository(name);
        repositories.set(name, repository);
      }
      return repository;
    },
    close: () => client.close(),
  };
}
