// The pipeline writes to a Store; an OCI image layout on disk and a remote registry both implement it
// (the go-containerregistry split of types, transports and storage).
import type { Blob } from './blob';
import type { Descriptor, SerializedManifest } from './types';

export type BlobPushResult = 'exists' | 'mounted' | 'uploaded';

export interface StoreStats {
  blobsUploaded: number;
  /** Blob bytes actually sent (or written); zero on a re-push of existing content. */
  bytesUploaded: number;
  blobsExisting: number;
  blobsMounted: number;
  manifestsPushed: number;
}

export interface FetchedManifest {
  mediaType: string;
  digest: string;
  bytes: Uint8Array;
  /** The registry's ETag for it, when it sends one (conditional updates of the referrers fallback tag). */
  etag?: string;
}

/** A fetched manifest as one to push (its bytes as they were read, so its digest stays). */
export function serializedOf(fetched: FetchedManifest): SerializedManifest {
  return {
    mediaType: fetched.mediaType,
    digest: fetched.digest,
    size: fetched.bytes.length,
    bytes: fetched.bytes,
  };
}

/** Where a store recorded referrers: the registry's referrers API, the fallback tag, or a layout's index.json. */
export type ReferrersMode = 'api' | 'fallback-tag' | 'layout';

/** One repository (an image name) inside a store. */
export interface Repository {
  /** Human-readable location, e.g. `127.0.0.1:5000/gardenlinux` or `oci:/tmp/out/gardenlinux`. */
  readonly location: string;
  hasBlob(digest: string, signal?: AbortSignal): Promise<boolean>;
  /**
   * Stores a blob unless it is there already. `mountFrom` names another repository of the same store
   * that holds it (cross-repository mount); it is a hint, and falls back to an upload.
   */
  pushBlob(blob: Blob, options?: { mountFrom?: string; signal?: AbortSignal }): Promise<BlobPushResult>;
  /** Stores a manifest or index (by digest) and points each tag at it. Its children must be stored first. */
  pushManifest(manifest: SerializedManifest, tags: readonly string[], signal?: AbortSignal): Promise<void>;
  /** The manifest a tag or digest names, or undefined when there is none. */
  getManifest(tagOrDigest: string, signal?: AbortSignal): Promise<FetchedManifest | undefined>;
  /**
   * A blob's bytes as a stream, for layers (`pull`, `boot`): not checked here, so the caller hashes them while
   * writing and compares with the digest (writeFileAtomic's expectedDigest). Throws PublishError when missing.
   */
  openBlob(digest: string, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array>>;
  /** A small blob's bytes (a config); callers never use this for layers. Throws PublishError when missing. */
  readBlob(digest: string, signal?: AbortSignal): Promise<Uint8Array>;
  /** The digest a tag points at, or undefined when the tag does not exist (cheaper than getManifest). */
  resolveTag(tag: string, signal?: AbortSignal): Promise<string | undefined>;
  /**
   * Stores referrer artifacts of `subject` (each manifest's blobs stored first) where OCI 1.1 clients look for
   * them: the registry's referrers API, else the `sha256-<hex>` fallback tag (updated read-modify-write, so
   * concurrent writers keep each other's entries); in a layout, untagged index.json entries. Idempotent.
   */
  pushReferrers(
    subject: Descriptor,
    artifacts: readonly SerializedManifest[],
    signal?: AbortSignal,
  ): Promise<ReferrersMode>;
  /** The referrers of a manifest as a referrers index lists them (artifactType, annotations); [] when none. */
  listReferrers(subject: string, signal?: AbortSignal): Promise<Descriptor[]>;
}

export interface Store {
  /** E.g. `ghcr.io` or `oci-layout:/tmp/out`. */
  readonly description: string;
  readonly stats: StoreStats;
  repository(name: string): Repository;
  close(): Promise<void>;
}

export function emptyStats(): StoreStats {
  return { blobsUploaded: 0, bytesUploaded: 0, blobsExisting: 0, blobsMounted: 0, manifestsPushed: 0 };
}
