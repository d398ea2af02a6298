// Per-registry upload behaviour lives in this one table (the regclient habit), not in `if` chains
// spread over the upload code. DOMAIN.md section 4 is the source of each row.

export interface RegistryProfile {
  /** For logs. */
  readonly name: string;
  /** Whether the registry accepts chunked (PATCH) uploads at all. */
  readonly chunkedUploads: boolean;
  /** Largest chunk a PATCH may carry (ghcr.io answers 416 above 4 MiB). */
  readonly maxChunkSize?: number;
  /** Smallest chunk except the last (ECR refuses smaller ones). */
  readonly minChunkSize?: number;
  /** Largest blob one monolithic PUT may carry; larger blobs go chunked. */
  readonly maxMonolithicSize?: number;
  /** Chunk size used when the profile forces chunking and the caller gave none. */
  readonly defaultChunkSize: number;
}

const MiB = 1024 * 1024;

interface ProfileRow {
  matches: (host: string) => boolean;
  profile: RegistryProfile;
}

const PROFILES: readonly ProfileRow[] = [
  {
    // Single-request uploads of large blobs work; PATCHes above 4 MiB are refused with 416.
    matches: (h) => h === 'ghcr.io',
    profile: { name: 'ghcr.io', chunkedUploads: true, maxChunkSize: 4 * MiB, defaultChunkSize: 4 * MiB },
  },
  {
    matches: (h) => h.endsWith('.amazonaws.com'),
    profile: { name: 'ECR', chunkedUploads: true, minChunkSize: 5_000_000, defaultChunkSize: 64 * MiB },
  },
  {
    matches: (h) =>
      h === 'gcr.io' || h.endsWith('.gcr.io') || h.endsWith('-docker.pkg.dev') || h.endsWith('.pkg.dev'),
    profile: { name: 'Google Artifact Registry', chunkedUploads: false, defaultChunkSize: 64 * MiB },
  },
  {
    matches: (h) => h === 'quay.io' || h.endsWith('.quay.io'),
    profile: {
      name: 'Quay',
      chunkedUploads: true,
      maxMonolithicSize: 20_000_000_000,
      defaultChunkSize: 1024 * MiB,
    },
  },
];

const DEFAULT_PROFILE: RegistryProfile = {
  name: 'generic',
  chunkedUploads: true,
  defaultChunkSize: 64 * MiB,
};

/** The profile of a registry `host[:port]`. */
export function profileFor(registry: string): RegistryProfile {
  const host = registry.replace(/:[0-9]+$/, '').toLowerCase();
  return PROFILES.find((row) => row.matches(host))?.profile ?? DEFAULT_PROFILE;
}

export type UploadPlan = { mode: 'monolithic' } | { mode: 'chunked'; chunkSize: number };

/**
 * How to upload a blob of `size` bytes: monolithic unless the caller asked for chunks (`chunkSize`) or the
 * blob is too big for one PUT; a requested chunk size is clamped into the registry's limits.
 */
export function planUpload(profile: RegistryProfile, size: number, chunkSize?: number): UploadPlan {
  const tooBig = profile.maxMonolithicSize !== undefined && size > profile.maxMonolithicSize;
  if (!profile.chunkedUploads || (chunkSize === undefined && !tooBig)) return { mode: 'monolithic' };
  let chunk = chunkSize ?? profile.defaultChunkSize;
  if (profile.maxChunkSize !== undefined) chunk = Math.min(chunk, profile.maxChunkSize);
  if (profile.minChunkSize !== undefined) chunk = Math.max(chunk, profile.minChunkSize);
  chunk = Math.max(1, Math.floor(chunk));
  // A blob that fits in one chunk gains nothing from PATCH + PUT.
  if (size <= chunk && !tooBig) return { mode: 'monolithic' };
  return { mode: 'chunked', chunkSize: chunk };
}
