// Pushes blobs into the repositories of one store so that each blob crosses the wire once per store:
// the first repository uploads it, later repositories (the same kernel in two images) mount it.
import type { Blob } from '../oci/blob';
import type { BlobPushResult, Store } from '../oci/store';

export class BlobPusher {
  /** digest -> the repository that holds (or is uploading) it, and that upload. */
  private readonly homes = new Map<string, { repository: string; done: Promise<BlobPushResult> }>();

  constructor(readonly store: Store) {}

  push(repository: string, blob: Blob, signal?: AbortSignal): Promise<BlobPushResult> {
    const home = this.homes.get(blob.digest);
    const repo = this.store.repository(repository);
    if (!home) {
      const done = repo.pushBlob(blob, signal ? { signal } : {});
      this.homes.set(blob.digest, { repository, done });
      done.catch(() => this.homes.delete(blob.digest));
      return done;
    }
    if (home.repository === repository) return home.done;
    // Wait for the first upload, then mount from there (falls back to an upload where mounting fails).
    return home.done.then(
      () => repo.pushBlob(blob, { mountFrom: home.repository, ...(signal ? { signal } : {}) }),
      () => repo.pushBlob(blob, signal ? { signal } : {}),
    );
  }
}
