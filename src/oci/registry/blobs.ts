// Blob pushes: HEAD first (skip what exists), a cross-repository mount when the caller names a source,
// else a monolithic PUT streamed from disk, or chunked PATCHes (per the registry's profile) that resume
// from the registry's Range after a 416 or a dropped connection. Every retry re-opens the Blob.
import { Readable, Transform } from 'node:stream';
import type { Blob } from '../blob';
import type { BlobPushResult, StoreStats } from '../store';
import { PublishError } from '../../util/errors';
import type { Logger } from '../../util/logger';
import { startProgress } from '../../util/progress';
import type { Progress } from '../../util/progress';
import { hasErrorCode } from './errors';
import { discard, registryBodyOf, statusOf } from './http';
import type { RegistryClient } from './http';
import { planUpload } from './profiles';
import type { RegistryProfile } from './profiles';
import { TransientError, withRetry } from './retry';

export interface BlobContext {
  client: RegistryClient;
  /** Repository name, e.g. `ironcore-dev/gardenlinux`. */
  repo: string;
  /** `host/repo`, for messages. */
  location: string;
  stats: StoreStats;
  profile: RegistryProfile;
  chunkSize?: number;
  logger: Logger;
}

/** How fast we assume an upload goes at worst, to know how long its token must stay valid. */
const ASSUMED_UPLOAD_BYTES_PER_MS = 5_000; // 5 MB/s

export const pullScope = (repo: string): string => `repository:${repo}:pull`;
export const pushScope = (repo: string): string => `repository:${repo}:pull,push`;

function shortDigest(digest: string): string {
  return digest.slice(0, 'sha256:'.length + 12);
}

export async function blobExists(
  ctx: BlobContext,
  digest: string,
  scopes: readonly string[],
  signal?: AbortSignal,
): Promise<boolean> {
  const res = await ctx.client.send({
    method: 'HEAD',
    url: `/v2/${ctx.repo}/blobs/${digest}`,
    scopes,
    operation: `checking blob ${shortDigest(digest)} in ${ctx.location}`,
    expect: [200, 404],
    followRedirects: true,
    ...(signal ? { signal } : {}),
  });
  await discard(res.body);
  return res.status === 200;
}

/** Appends `digest=` to an upload Location, keeping whatever state the registry put in its query. */
function withDigest(location: string, digest: string): string {
  return `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
}

/** Passes at most `length` bytes of `source` on, counting them, then ends (and stops reading the source). */
function meter(source: Readable, length: number, onBytes: (n: number) => void): Readable {
  let left = length;
  const out = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (left <= 0) return callback();
      const part = chunk.length > left ? chunk.subarray(0, left) : chunk;
      left -= part.length;
      onBytes(part.length);
      callback(null, part);
      if (left <= 0) {
        this.push(null);
        source.unpipe(this);
        source.destroy();
      }
    },
  });
  source.on('error', (error) => out.destroy(error));
  out.on('close', () => source.destroy());
  return source.pipe(out);
}

/** A BLOB_UPLOAD_UNKNOWN answer: the registry lost the upload session (ghcr under load); start over. */
function uploadLost(error: unknown): boolean {
  const status = statusOf(error);
  return (status === 404 || status === 400) && hasErrorCode(registryBodyOf(error), 'BLOB_UPLOAD_UNKNOWN');
}

class UploadSession {
  private progress: Progress;
  constructor(
    private readonly ctx: BlobContext,
    private readonly blob: Blob,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.progress = startProgress(ctx.logger, `uploading ${blob.label} to ${ctx.location}`, blob.size);
  }

  private get op(): string {
    return `pushing blob ${shortDigest(this.blob.digest)} (${this.blob.label}) to ${this.ctx.location}`;
  }

  private sent = (n: number): void => {
    this.ctx.stats.bytesUploaded += n;
    this.progress.advance(n);
  };

  private signalOption(): { signal?: AbortSignal } {
    return this.signal ? { signal: this.signal } : {};
  }

  /** POST to start an upload, or to mount from `mountFrom`: returns 'mounted' or the upload Location. */
  private async start(mountFrom: string | undefined): Promise<{ mounted: true } | { location: string }> {
    const { client, repo } = this.ctx;
    const query = mountFrom
      ? `?mount=${encodeURIComponent(this.blob.digest)}&from=${encodeURIComponent(mountFrom)}`
      : '';
    const res = await client.sendOnce({
      method: 'POST',
      url: `/v2/${repo}/blobs/uploads/${query}`,
      scopes: mountFrom ? [pushScope(repo), pullScope(mountFrom)] : [pushScope(repo)],
      operation: this.op,
      expect: [201, 202],
      headers: { 'content-length': '0' },
      ...this.signalOption(),
    });
    await discard(res.body);
    if (res.status === 201 && mountFrom) return { mounted: true };
    const location = res.headers.location;
    if (!location) throw new PublishError(`${this.op}: the registry started an upload without a Location`);
    return { location: client.resolve(location, res.url) };
  }

  /** A mount is only a hint: when it is refused (no pull right on the source, say) we upload instead. */
  private async startOrMount(
    mountFrom: string | undefined,
  ): Promise<{ mounted: true } | { location: string }> {
    if (!mountFrom) return this.start(undefined);
    try {
      return await this.start(mountFrom);
    } catch (error) {
      if (error instanceof TransientError || !(error instanceof PublishError)) throw error;
      this.ctx.logger.debug(`mounting from ${mountFrom} failed (${error.message}); uploading instead`);
      return this.start(undefined);
    }
  }

  async run(mountFrom: string | undefined): Promise<BlobPushResult> {
    try {
      return await withRetry(
        async (attempt) => {
          try {
            // A mount is tried once; after a failure we upload.
            const started = await this.startOrMount(attempt === 1 ? mountFrom : undefined);
            if ('mounted' in started) return 'mounted';
            const plan = planUpload(this.ctx.profile, this.blob.size, this.ctx.chunkSize);
            if (plan.mode === 'monolithic') await this.monolithic(started.location);
            else await this.chunked(started.location, plan.chunkSize);
            return 'uploaded';
          } catch (error) {
            if (uploadLost(error)) throw new TransientError(error as PublishError);
            throw error;
          }
        },
        {
          retry: this.ctx.client.retry,
          logger: this.ctx.logger,
          what: this.op,
          ...this.signalOption(),
          // The failed attempt may have landed after all (a dropped answer to a complete PUT).
          landed: async () =>
            (await blobExists(this.ctx, this.blob.digest, [pushScope(this.ctx.repo)], this.signal).catch(
              () => false,
            ))
              ? { done: 'uploaded' as const }
              : undefined,
        },
      );
    } finally {
      this.progress.done();
    }
  }

  private async monolithic(location: string): Promise<void> {
    const res = await this.ctx.client.sendOnce({
      method: 'PUT',
      url: withDigest(location, this.blob.digest),
      scopes: [pushScope(this.ctx.repo)],
      operation: this.op,
      expect: [201, 204],
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(this.blob.size) },
      body: () => meter(this.blob.open(0), this.blob.size, this.sent),
      minValidityMs: this.blob.size / ASSUMED_UPLOAD_BYTES_PER_MS,
      ...this.signalOption(),
    });
    await discard(res.body);
  }

  /** Where the registry says an upload stands: the next byte it expects (from `Range: 0-<last>`). */
  private async offsetOf(location: string): Promise<{ offset: number; location: string }> {
    const res = await this.ctx.client.sendOnce({
      method: 'GET',
      url: location,
      scopes: [pushScope(this.ctx.repo)],
      operation: `${this.op} (asking for the upload offset)`,
      expect: [204, 200],
      ...this.signalOption(),
    });
    await discard(res.body);
    const range = /^(?:bytes=)?0-([0-9]+)$/.exec(res.headers.range ?? '');
    // distribution answers `0-0` for an empty upload too; chunks are never a single byte, so it means 0.
    const last = range ? Number(range[1]) : -1;
    const next = res.headers.location ? this.ctx.client.resolve(res.headers.location, res.url) : location;
    return { offset: last > 0 ? last + 1 : 0, location: next };
  }

  private async chunked(firstLocation: string, chunkSize: number): Promise<void> {
    let location = firstLocation;
    let offset = 0;
    let resumes = 0;
    const size = this.blob.size;
    while (offset < size) {
      const length = Math.min(chunkSize, size - offset);
      const start = offset;
      try {
        const res = await this.ctx.client.sendOnce({
          method: 'PATCH',
          url: location,
          scopes: [pushScope(this.ctx.repo)],
          operation: this.op,
          expect: [202, 204],
          headers: {
            'content-type': 'application/octet-stream',
            'content-length': String(length),
            'content-range': `${start}-${start + length - 1}`,
          },
          body: () => meter(this.blob.open(start), length, this.sent),
          ...this.signalOption(),
        });
        await discard(res.body);
        if (res.headers.location) location = this.ctx.client.resolve(res.headers.location, res.url);
        const range = /^(?:bytes=)?0-([0-9]+)$/.exec(res.headers.range ?? '');
        offset = range ? Number(range[1]) + 1 : start + length;
      } catch (error) {
        // 416: the registry holds a different offset than we thought; a dropped connection: unknown.
        // Either way ask where it stands and go on from there.
        const resumable = error instanceof TransientError || statusOf(error) === 416;
        if (!resumable || uploadLost(error) || ++resumes > this.ctx.client.retry.attempts) {
          throw error;
        }
        this.ctx.logger.warning(
          `${error instanceof TransientError ? error.final.message : (error as Error).message}; resuming the upload`,
        );
        let state: { offset: number; location: string };
        try {
          state = await this.offsetOf(location);
        } catch (statusError) {
          // distribution keeps upload state in the Location's query; after a chunk that landed but whose
          // answer was lost, that state is stale and the registry refuses to say more: start over.
          if (statusError instanceof TransientError || !(statusError instanceof PublishError))
            throw statusError;
          throw new TransientError(statusError);
        }
        location = state.location;
        offset = state.offset;
        this.ctx.logger.info(`resuming ${this.blob.label} at byte ${offset} of ${size}`);
      }
    }
    const res = await this.ctx.client.sendOnce({
      method: 'PUT',
      url: withDigest(location, this.blob.digest),
      scopes: [pushScope(this.ctx.repo)],
      operation: this.op,
      expect: [201, 204],
      headers: { 'content-length': '0' },
      ...this.signalOption(),
    });
    await discard(res.body);
  }
}

/** Pushes one blob unless the repository has it; updates the stats. */
export async function pushBlob(
  ctx: BlobContext,
  blob: Blob,
  options: { mountFrom?: string; signal?: AbortSignal } = {},
): Promise<BlobPushResult> {
  if (await blobExists(ctx, blob.digest, [pushScope(ctx.repo)], options.signal)) {
    ctx.stats.blobsExisting++;
    return 'exists';
  }
  const mountFrom = options.mountFrom && options.mountFrom !== ctx.repo ? options.mountFrom : undefined;
  const result = await new UploadSession(ctx, blob, options.signal).run(mountFrom);
  if (result === 'mounted') ctx.stats.blobsMounted++;
  else ctx.stats.blobsUploaded++;
  ctx.logger.debug(`${result} ${blob.label} (${blob.size} bytes) in ${ctx.location}`);
  return result;
}
